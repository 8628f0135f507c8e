/*
 * bench/c_loop.c - the ceiling for any libcurl client: one easy handle reused
 * for N identical requests over one keep-alive connection, every option set
 * once, the response body collected into a reused buffer and the status checked.
 *
 *   c_loop URL N METHOD BODY [HEADER ...]
 *   c_loop --multi=C URL N METHOD BODY [HEADER ...]
 *
 * --multi=C: the ceiling of a libcurl bulk client: C easy handles on one multi
 * handle (C connections), each re-added as soon as its transfer is done, until
 * N requests have completed.
 *
 * Prints one line: requests=N seconds=S cpu=S hwm_kb=K failed=F (seconds and
 * cpu cover the timed loop only; cpu is getrusage user+sys of this process).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <curl/curl.h>

typedef struct body_buf {
    char *data;
    size_t len, cap;
} body_buf;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    body_buf *b = (body_buf *)ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        char *grown;
        while (cap < b->len + n + 1)
            cap *= 2;
        grown = (char *)realloc(b->data, cap);
        if (grown == NULL)
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* VmHWM of this process in kB (0 when /proc is not there). */
static long hwm_kb(void)
{
    char line[256];
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* One request; returns 1 when it got HTTP 200 with a body. */
static int perform(CURL *e, body_buf *b)
{
    long status = 0;
    b->len = 0;
    if (curl_easy_perform(e) != CURLE_OK)
        return 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    return status == 200 && b->len > 0;
}

static void configure(CURL *e, char **argv, struct curl_slist *headers, body_buf *b)
{
    curl_easy_setopt(e, CURLOPT_URL, argv[1]);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(argv[4]));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, argv[4]);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, argv[3]);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)b);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)b);
}

#define MAX_MULTI 256

/* --multi=C: argv as in main without the flag. */
static int multi_main(int c, int argc, char **argv)
{
    struct curl_slist *headers = NULL;
    CURL *easy[MAX_MULTI];
    body_buf bufs[MAX_MULTI];
    CURLM *m;
    long n, started = 0, completed = 0, failed = 0;
    int k, running = 0;
    double t0, t1, c0, c1;

    n = strtol(argv[2], NULL, 10);
    if (c < 1 || c > MAX_MULTI || n < 1) {
        fprintf(stderr, "c_loop: --multi=C needs 1 <= C <= %d and N >= 1\n", MAX_MULTI);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m = curl_multi_init();
    for (k = 5; k < argc; k++)
        headers = curl_slist_append(headers, argv[k]);
    for (k = 0; k < c; k++) {
        bufs[k].data = NULL;
        bufs[k].len = bufs[k].cap = 0;
        easy[k] = curl_easy_init();
        if (easy[k] == NULL || m == NULL)
            return 1;
        configure(easy[k], argv, headers, &bufs[k]);
    }
    t0 = wall_seconds();
    c0 = cpu_seconds();
    for (k = 0; k < c && started < n; k++, started++)
        curl_multi_add_handle(m, easy[k]);
    while (completed < n) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            CURL *e = msg->easy_handle;
            body_buf *b = NULL;
            long status = 0;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status != 200 || b->len == 0)
                failed++;
            b->len = 0;
            completed++;
            curl_multi_remove_handle(m, e);
            if (started < n) {
                curl_multi_add_handle(m, e);
                started++;
            }
        }
        if (completed < n)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    t1 = wall_seconds();
    c1 = cpu_seconds();
    printf("requests=%ld seconds=%.6f cpu=%.6f hwm_kb=%ld failed=%ld\n", n, t1 - t0, c1 - c0,
           hwm_kb(), failed);
    for (k = 0; k < c; k++) {
        curl_easy_cleanup(easy[k]);
        free(bufs[k].data);
    }
    curl_multi_cleanup(m);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return failed > 0;
}

int main(int argc, char **argv)
{
    struct curl_slist *headers = NULL;
    body_buf b = {NULL, 0, 0};
    CURL *e;
    long n, i, failed = 0;
    int k;
    double t0, t1, c0, c1;

    if (argc >= 2 && strncmp(argv[1], "--multi=", 8) == 0) {
        if (argc < 6) {
            fprintf(stderr, "usage: %s --multi=C URL N METHOD BODY [HEADER ...]\n", argv[0]);
            return 2;
        }
        return multi_main((int)strtol(argv[1] + 8, NULL, 10), argc - 1, argv + 1);
    }
    if (argc < 5) {
        fprintf(stderr, "usage: %s URL N METHOD BODY [HEADER ...]\n", argv[0]);
        return 2;
    }
    n = strtol(argv[2], NULL, 10);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    e = curl_easy_init();
    if (e == NULL)
        return 1;
    for (k = 5; k < argc; k++)
        headers = curl_slist_append(headers, argv[k]);
    configure(e, argv, headers, &b);

    if (!perform(e, &b)) { /* warm-up: opens the connection */
        fprintf(stderr, "c_loop: the warm-up request failed\n");
        return 1;
    }
    t0 = wall_seconds();
    c0 = cpu_seconds();
    for (i = 0; i < n; i++)
        if (!perform(e, &b))
            failed++;
    t1 = wall_seconds();
    c1 = cpu_seconds();
    printf("requests=%ld seconds=%.6f cpu=%.6f hwm_kb=%ld failed=%ld\n", n, t1 - t0, c1 - c0,
           hwm_kb(), failed);

    curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    free(b.data);
    curl_global_cleanup();
    return failed > 0;
}
