/*
 * bench/rusage.c - runs a command and prints what it cost, for clients that
 * cannot measure themselves (wrk, the curl CLI loop):
 *
 *   rusage COMMAND [ARG ...]
 *
 * After the command's own output, prints one line
 *   rusage_seconds=S rusage_cpu=S rusage_hwm_kb=K rusage_status=C
 * (wall time, user+sys CPU of the command and every child it waited for, the
 * largest peak RSS among them, and the exit status), from wait4().
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct rusage ru;
    int status = 0;
    pid_t pid;
    double t0, t1;

    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARG ...]\n", argv[0]);
        return 2;
    }
    fflush(stdout);
    t0 = wall_seconds();
    pid = fork();
    if (pid < 0) {
        perror("rusage: fork");
        return 1;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror("rusage: exec");
        _exit(127);
    }
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("rusage: wait4");
        return 1;
    }
    t1 = wall_seconds();
    printf("rusage_seconds=%.6f rusage_cpu=%.6f rusage_hwm_kb=%ld rusage_status=%d\n", t1 - t0,
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
           ru.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}
