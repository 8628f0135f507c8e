/*
 * test_cidr.c - unit tests for src/ck_cidr.c: which entries Go accepts, their
 * normalised text, Go's membership rules, and a randomized cross-check of the
 * range-table matcher against a literal transcription of Go's net package.
 * Run with --quick for fewer random addresses (used under valgrind).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_cidr.h"

static unsigned long passes, fails;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passes++;                                                                              \
        } else {                                                                                   \
            fails++;                                                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* ================================================================ Go, transcribed */

/* net.IP: a byte slice of length 4 or 16 (0 = nil). */
typedef struct go_ip {
    uint8_t b[16];
    size_t len;
} go_ip;

static const uint8_t go_v4_in_v6_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static go_ip go_slice(const uint8_t *b, size_t len)
{
    go_ip ip;
    memset(&ip, 0, sizeof ip);
    memcpy(ip.b, b, len);
    ip.len = len;
    return ip;
}

/* func (ip IP) To4() IP */
static go_ip go_to4(go_ip ip)
{
    if (ip.len == 4)
        return ip;
    if (ip.len == 16 && memcmp(ip.b, go_v4_in_v6_prefix, 12) == 0)
        return go_slice(ip.b + 12, 4);
    return go_slice(ip.b, 0);
}

/* func (ip IP) Equal(x IP) bool */
static int go_equal(go_ip ip, go_ip x)
{
    if (ip.len == x.len)
        return memcmp(ip.b, x.b, ip.len) == 0;
    if (ip.len == 4 && x.len == 16)
        return memcmp(x.b, go_v4_in_v6_prefix, 12) == 0 && memcmp(ip.b, x.b + 12, 4) == 0;
    if (ip.len == 16 && x.len == 4)
        return memcmp(ip.b, go_v4_in_v6_prefix, 12) == 0 && memcmp(ip.b + 12, x.b, 4) == 0;
    return 0;
}

/* func CIDRMask(ones, bits int) IPMask */
static go_ip go_cidr_mask(unsigned ones, unsigned bits)
{
    go_ip m;
    size_t i;
    memset(&m, 0, sizeof m);
    m.len = bits / 8;
    for (i = 0; i < m.len; i++) {
        if (ones >= 8) {
            m.b[i] = 0xff;
            ones -= 8;
        } else {
            m.b[i] = (uint8_t) ~(0xff >> ones);
            ones = 0;
        }
    }
    return m;
}

/* func (ip IP) Mask(mask IPMask) IP */
static go_ip go_mask(go_ip ip, go_ip mask)
{
    go_ip out;
    size_t i;
    if (mask.len == 16 && ip.len == 4 &&
        memcmp(mask.b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12) == 0)
        mask = go_slice(mask.b + 12, 4);
    if (mask.len == 4 && ip.len == 16 && memcmp(ip.b, go_v4_in_v6_prefix, 12) == 0)
        ip = go_slice(ip.b + 12, 4);
    if (ip.len != mask.len)
        return go_slice(ip.b, 0);
    out = go_slice(ip.b, ip.len);
    for (i = 0; i < ip.len; i++)
        out.b[i] = ip.b[i] & mask.b[i];
    return out;
}

/* func (n *IPNet) Contains(ip IP) bool, with networkNumberAndMask inlined */
static int go_ipnet_contains(go_ip net_ip, go_ip net_mask, go_ip ip)
{
    go_ip nn = go_to4(net_ip), m = net_mask, x;
    size_t i;
    if (nn.len == 0) {
        nn = net_ip;
        if (nn.len != 16)
            return 0;
    }
    if (m.len == 4) {
        if (nn.len != 4)
            return 0;
    } else if (m.len == 16) {
        if (nn.len == 4)
            m = go_slice(m.b + 12, 4);
    } else {
        return 0;
    }
    x = go_to4(ip);
    if (x.len != 0)
        ip = x;
    if (ip.len != nn.len)
        return 0;
    for (i = 0; i < ip.len; i++)
        if ((nn.b[i] & m.b[i]) != (ip.b[i] & m.b[i]))
            return 0;
    return 1;
}

/* What Go holds for one entry: ParseCIDR's IPNet, or else ParseIP's IP. The
 * entry's 16 bytes and prefix stand for the text Go parsed. */
typedef struct go_entry {
    int is_cidr;
    go_ip ip;               /* net.ParseIP(entry) */
    go_ip net_ip, net_mask; /* net.ParseCIDR(entry) */
} go_entry;

static go_entry go_parse_entry(const ck_entry *e)
{
    go_entry g;
    memset(&g, 0, sizeof g);
    g.ip = go_slice(e->addr, 16);
    if (e->kind != CK_ENTRY_IP) {
        /* ParseCIDR: mask := CIDRMask(n, 8*iplen); IPNet{IP: ip.Mask(mask), Mask: mask} */
        g.is_cidr = 1;
        g.net_mask = go_cidr_mask(e->prefix, e->kind == CK_ENTRY_NET4 ? 32 : 128);
        g.net_ip = go_mask(g.ip, g.net_mask);
    }
    return g;
}

static go_entry *go_parse_list(const ck_entry *e, size_t n)
{
    go_entry *g = (go_entry *)malloc((n ? n : 1) * sizeof *g);
    size_t i;
    if (g == NULL)
        abort();
    for (i = 0; i < n; i++)
        g[i] = go_parse_entry(&e[i]);
    return g;
}

/* common.IsIpInCIDRList: Contains for a CIDR, else Equal; an empty list is no restriction */
static int go_list_admits(const go_entry *g, size_t n, go_ip client)
{
    size_t i;
    if (n == 0)
        return 1;
    for (i = 0; i < n; i++) {
        if (g[i].is_cidr ? go_ipnet_contains(g[i].net_ip, g[i].net_mask, client)
                         : go_equal(client, g[i].ip))
            return 1;
    }
    return 0;
}

/* ================================================================ helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) /* xorshift64* with a fixed seed */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static unsigned rng_below(unsigned n)
{
    return (unsigned)(rng() % n);
}

/* Parses a list string into a malloc'd entry array; returns the count or
 * (size_t)-1 when an entry is invalid. */
static size_t parse_list(const char *text, ck_entry **out)
{
    size_t len = strlen(text), pos = 0, start, elen, n = 0;
    ck_entry *e = (ck_entry *)malloc((len / 2 + 1) * sizeof *e);
    if (e == NULL)
        abort();
    while (ck_list_next(text, len, &pos, &start, &elen)) {
        if (ck_entry_parse(text + start, elen, &e[n]) != CK_CIDR_OK) {
            free(e);
            *out = NULL;
            return (size_t)-1;
        }
        n++;
    }
    *out = e;
    return n;
}

/* ================================================================ entry syntax */

typedef struct entry_case {
    const char *in;
    int code;         /* expected parse result */
    const char *norm; /* expected normalised text when valid */
} entry_case;

static const entry_case entry_cases[] = {
    /* IPv4 */
    {"1.2.3.4", CK_CIDR_OK, "1.2.3.4"},
    {"0.0.0.0", CK_CIDR_OK, "0.0.0.0"},
    {"255.255.255.255", CK_CIDR_OK, "255.255.255.255"},
    {"192.168.100.200", CK_CIDR_OK, "192.168.100.200"},
    {"10.0.0.0/8", CK_CIDR_OK, "10.0.0.0/8"},
    {"10.1.2.3/8", CK_CIDR_OK, "10.0.0.0/8"},
    {"192.168.1.77/24", CK_CIDR_OK, "192.168.1.0/24"},
    {"172.31.255.255/12", CK_CIDR_OK, "172.16.0.0/12"},
    {"1.2.3.4/32", CK_CIDR_OK, "1.2.3.4/32"},
    {"1.2.3.4/31", CK_CIDR_OK, "1.2.3.4/31"},
    {"1.2.3.5/31", CK_CIDR_OK, "1.2.3.4/31"},
    {"1.2.3.4/0", CK_CIDR_OK, "0.0.0.0/0"},
    {"10.0.0.0/08", CK_CIDR_OK, "10.0.0.0/8"},
    {"10.0.0.0/0008", CK_CIDR_OK, "10.0.0.0/8"},
    {"1.2.3.4/00", CK_CIDR_OK, "0.0.0.0/0"},
    {"1.2.3.4/000000000000000000032", CK_CIDR_OK, "1.2.3.4/32"},
    {"", CK_CIDR_EEMPTY, NULL},
    {"01.2.3.4", CK_CIDR_ELEADING_ZERO, NULL},
    {"1.2.3.04", CK_CIDR_ELEADING_ZERO, NULL},
    {"1.2.3.00", CK_CIDR_ELEADING_ZERO, NULL},
    {"1.02.3.4/8", CK_CIDR_ELEADING_ZERO, NULL},
    {"256.1.1.1", CK_CIDR_EOCTET, NULL},
    {"1.2.3.999", CK_CIDR_EOCTET, NULL},
    {"1.2.3.1000", CK_CIDR_EOCTET, NULL},
    {"1.2.3", CK_CIDR_EINVALID, NULL},
    {"1.2.3.4.5", CK_CIDR_EINVALID, NULL},
    {"1..2.3", CK_CIDR_EINVALID, NULL},
    {".1.2.3", CK_CIDR_EINVALID, NULL},
    {"1.2.3.", CK_CIDR_EINVALID, NULL},
    {"1.2.3.4.", CK_CIDR_EINVALID, NULL},
    {"0x1.2.3.4", CK_CIDR_EINVALID, NULL},
    {"1.2.3.4 ", CK_CIDR_EINVALID, NULL},
    {"1", CK_CIDR_EINVALID, NULL},
    {"16909060", CK_CIDR_EINVALID, NULL},
    {"1.2.3.4/33", CK_CIDR_EPREFIX4, NULL},
    {"1.2.3.4/99999999", CK_CIDR_EPREFIX4, NULL},
    {"1.2.3.4/128", CK_CIDR_EPREFIX4, NULL},
    {"1.2.3.4/", CK_CIDR_EPREFIX, NULL},
    {"1.2.3.4/-1", CK_CIDR_EPREFIX, NULL},
    {"1.2.3.4/+8", CK_CIDR_EPREFIX, NULL},
    {"1.2.3.4/8/8", CK_CIDR_EPREFIX, NULL},
    {"1.2.3.4/8a", CK_CIDR_EPREFIX, NULL},
    {"1.2.3.4/0x8", CK_CIDR_EPREFIX, NULL},
    {"1.2.3.4/255.0.0.0", CK_CIDR_EPREFIX, NULL},
    {"/8", CK_CIDR_EINVALID, NULL},
    {"10.0.0.1:80", CK_CIDR_EPORT, NULL},
    {"10.0.0.1:80/8", CK_CIDR_EPORT, NULL},
    {"1.2.3.4:", CK_CIDR_EINVALID, NULL},
    {"1.2.3.4::", CK_CIDR_EINVALID, NULL},
    {"10.0.0.1-10.0.0.9", CK_CIDR_ERANGE, NULL},
    {"10.0.0.0-255", CK_CIDR_ERANGE, NULL},
    {"10.0.0.*", CK_CIDR_ERANGE, NULL},
    {"*", CK_CIDR_ERANGE, NULL},
    {"localhost", CK_CIDR_EHOSTNAME, NULL},
    {"example.com", CK_CIDR_EHOSTNAME, NULL},
    {"my-host", CK_CIDR_EHOSTNAME, NULL},
    {"[1.2.3.4]", CK_CIDR_EBRACKETS, NULL},
    /* IPv6 */
    {"::", CK_CIDR_OK, "::"},
    {"::1", CK_CIDR_OK, "::1"},
    {"::/0", CK_CIDR_OK, "::/0"},
    {"2001:db8::/32", CK_CIDR_OK, "2001:db8::/32"},
    {"2001:DB8::1", CK_CIDR_OK, "2001:db8::1"},
    {"2001:0db8:0000:0000:0000:0000:0000:0001", CK_CIDR_OK, "2001:db8::1"},
    {"2001:db8:0:0:1:0:0:1", CK_CIDR_OK, "2001:db8::1:0:0:1"},
    {"2001:0:0:1:0:0:0:1", CK_CIDR_OK, "2001:0:0:1::1"},
    {"2001:db8:0:1:1:1:1:1", CK_CIDR_OK, "2001:db8:0:1:1:1:1:1"},
    {"1:0:0:2:0:0:3:4", CK_CIDR_OK, "1::2:0:0:3:4"},
    {"1:2:3:4:5:6:7:8", CK_CIDR_OK, "1:2:3:4:5:6:7:8"},
    {"A:B:C:D:E:F:a:b", CK_CIDR_OK, "a:b:c:d:e:f:a:b"},
    {"1::", CK_CIDR_OK, "1::"},
    {"1:2:3:4:5:6:7::", CK_CIDR_OK, "1:2:3:4:5:6:7:0"},
    {"::2:3:4:5:6:7:8", CK_CIDR_OK, "0:2:3:4:5:6:7:8"},
    {"0:0:0:0:0:0:0:0", CK_CIDR_OK, "::"},
    {"0000::", CK_CIDR_OK, "::"},
    {"::0:0", CK_CIDR_OK, "::"},
    {"fe80::1/64", CK_CIDR_OK, "fe80::/64"},
    {"2001:db8::1/128", CK_CIDR_OK, "2001:db8::1/128"},
    {"::1/0128", CK_CIDR_OK, "::1/128"},
    {"2001:db8:1234:5678:9abc:def0:1234:5678/64", CK_CIDR_OK, "2001:db8:1234:5678::/64"},
    {"2001:db8:ffff::/33", CK_CIDR_OK, "2001:db8:8000::/33"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", CK_CIDR_OK,
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    /* embedded IPv4 */
    {"::ffff:1.2.3.4", CK_CIDR_OK, "1.2.3.4"},
    {"::FFFF:1.2.3.4", CK_CIDR_OK, "1.2.3.4"},
    {"::ffff:0102:0304", CK_CIDR_OK, "1.2.3.4"},
    {"0:0:0:0:0:ffff:1.2.3.4", CK_CIDR_OK, "1.2.3.4"},
    {"::1.2.3.4", CK_CIDR_OK, "::102:304"},
    {"1:2:3:4:5:6:1.2.3.4", CK_CIDR_OK, "1:2:3:4:5:6:102:304"},
    {"64:ff9b::192.0.2.33", CK_CIDR_OK, "64:ff9b::c000:221"},
    {"::ffff:1.2.3.0/120", CK_CIDR_OK, "::ffff:1.2.3.0/120"},
    {"::ffff:1.2.3.4/120", CK_CIDR_OK, "::ffff:1.2.3.0/120"},
    {"::ffff:0:0/96", CK_CIDR_OK, "::ffff:0.0.0.0/96"},
    {"::ffff:1.2.3.4/128", CK_CIDR_OK, "::ffff:1.2.3.4/128"},
    {"::ffff:1.2.3.4/90", CK_CIDR_OK, "::ffc0:0:0/90"},
    {"::ffff:1.2.3.4/95", CK_CIDR_OK, "::fffe:0:0/95"},
    {"::ffff:1.2.3.4/129", CK_CIDR_EPREFIX6, NULL},
    {"::/129", CK_CIDR_EPREFIX6, NULL},
    {"::/", CK_CIDR_EPREFIX, NULL},
    {"::1/ 8", CK_CIDR_EPREFIX, NULL},
    {"::12345", CK_CIDR_EHEXGROUP, NULL},
    {"00000::1", CK_CIDR_EHEXGROUP, NULL},
    {"1:2:3:4:5:6:7:8:9", CK_CIDR_EINVALID, NULL},
    {"1:2:3:4:5:6:7", CK_CIDR_EINVALID, NULL},
    {"1::2::3", CK_CIDR_EINVALID, NULL},
    {":1", CK_CIDR_EINVALID, NULL},
    {"1:", CK_CIDR_EINVALID, NULL},
    {":::", CK_CIDR_EINVALID, NULL},
    {"1:::2", CK_CIDR_EINVALID, NULL},
    {":", CK_CIDR_EINVALID, NULL},
    {"1:2:3:4:5:6:7:8::", CK_CIDR_EINVALID, NULL},
    {"::1:2:3:4:5:6:7:8", CK_CIDR_EINVALID, NULL},
    {"1:2:3:4:5:6:7::8", CK_CIDR_EINVALID, NULL},
    {"1:2:3:4:5:6:7:1.2.3.4", CK_CIDR_EINVALID, NULL},
    {"1:2:3:4:5:1.2.3.4", CK_CIDR_EINVALID, NULL},
    {"1:2:3:4:5:6::1.2.3.4", CK_CIDR_EINVALID, NULL},
    {"::1.2.3", CK_CIDR_EINVALID, NULL},
    {"::1.2.3.4.5", CK_CIDR_EINVALID, NULL},
    {"::1.2.3.4:5", CK_CIDR_EPORT, NULL},
    {"::01.2.3.4", CK_CIDR_ELEADING_ZERO, NULL},
    {"::256.1.1.1", CK_CIDR_EOCTET, NULL},
    {"::a.2.3.4", CK_CIDR_EINVALID, NULL},
    {"g::1", CK_CIDR_EINVALID, NULL},
    {"2001:db8::-2001:db8::5", CK_CIDR_ERANGE, NULL},
    {"fe80::1%eth0", CK_CIDR_EZONE, NULL},
    {"fe80::1%", CK_CIDR_EZONE, NULL},
    {"fe80::1%eth0/64", CK_CIDR_EZONE, NULL},
    {"::ffff:1.2.3.4%eth0", CK_CIDR_EZONE, NULL},
    {"%eth0", CK_CIDR_EZONE, NULL},
    {"1.2.3.4%eth0", CK_CIDR_EZONE, NULL},
    {"[::1]", CK_CIDR_EBRACKETS, NULL},
    {"[::1]:80", CK_CIDR_EBRACKETS, NULL},
    {"[2001:db8::]/32", CK_CIDR_EBRACKETS, NULL},
};

static void test_entry_syntax(void)
{
    size_t i;
    for (i = 0; i < sizeof entry_cases / sizeof entry_cases[0]; i++) {
        const entry_case *c = &entry_cases[i];
        ck_entry e, again;
        char text[CK_ENTRY_TEXT_MAX], text2[CK_ENTRY_TEXT_MAX];
        int code = ck_entry_parse(c->in, strlen(c->in), &e);
        CHECK(code == c->code, "parse(\"%s\") = %d (%s), want %d (%s)", c->in, code,
              ck_cidr_strerror(code), c->code, ck_cidr_strerror(c->code));
        if (code != CK_CIDR_OK || c->code != CK_CIDR_OK)
            continue;
        ck_entry_format(&e, text, sizeof text);
        CHECK(strcmp(text, c->norm) == 0, "format(\"%s\") = \"%s\", want \"%s\"", c->in, text,
              c->norm);
        /* the normalised text is a fixed point and stands for the same entry */
        code = ck_entry_parse(text, strlen(text), &again);
        CHECK(code == CK_CIDR_OK, "reparse(\"%s\") = %d", text, code);
        ck_entry_format(&again, text2, sizeof text2);
        CHECK(strcmp(text, text2) == 0, "format is not a fixed point: \"%s\" -> \"%s\"", text,
              text2);
        CHECK(memcmp(&e, &again, sizeof e) == 0, "reparse(\"%s\") differs from \"%s\"", text,
              c->in);
    }
}

/* Entry kinds and the family of the prefix (ParseCIDR's Is4). */
static void test_entry_kinds(void)
{
    ck_entry e;
    CHECK(ck_entry_parse("1.2.3.4", 7, &e) == 0 && e.kind == CK_ENTRY_IP, "plain IPv4");
    CHECK(ck_entry_parse("1.2.3.0/24", 10, &e) == 0 && e.kind == CK_ENTRY_NET4 && e.prefix == 24,
          "IPv4 CIDR");
    CHECK(ck_entry_parse("::ffff:1.2.3.0/120", 18, &e) == 0 && e.kind == CK_ENTRY_NET6 &&
              e.prefix == 120,
          "IPv4-mapped CIDR is an IPv6 CIDR");
    CHECK(ck_entry_parse("::ffff:1.2.3.4", 14, &e) == 0 && e.kind == CK_ENTRY_IP &&
              memcmp(e.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff\x01\x02\x03\x04", 16) == 0,
          "mapped plain address bytes");
}

static void test_error_texts(void)
{
    int code;
    for (code = CK_CIDR_EINVALID; code <= CK_CIDR_ESEPARATOR; code++) {
        const char *t = ck_cidr_strerror(code);
        CHECK(strncmp(t, "not an IP address or CIDR", 25) == 0, "strerror(%d) = %s", code, t);
    }
    CHECK(strcmp(ck_cidr_strerror(CK_CIDR_EPORT),
                 "not an IP address or CIDR (ports are not allowed)") == 0,
          "port reason");
    CHECK(strcmp(ck_cidr_strerror(12345), "not an IP address or CIDR") == 0, "unknown code");
}

/* ================================================================ text helpers */

static void test_format_buffer(void)
{
    ck_entry e;
    char small[8];
    size_t n;
    ck_entry_parse("2001:db8::/32", 13, &e);
    n = ck_entry_format(&e, small, sizeof small);
    CHECK(n == 13 && strcmp(small, "2001:db") == 0, "truncated format: %zu \"%s\"", n, small);
    n = ck_entry_format(&e, NULL, 0);
    CHECK(n == 13, "length-only format: %zu", n);
    ck_entry_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 43, &e);
    CHECK(ck_entry_format(&e, NULL, 0) < CK_ENTRY_TEXT_MAX, "CK_ENTRY_TEXT_MAX is enough");
}

static void test_quote(void)
{
    char buf[CK_QUOTE_MAX], big[300];
    size_t n;
    n = ck_cidr_quote("a\"b\\c\x01\xff", 7, buf, sizeof buf);
    CHECK(strcmp(buf, "a\\\"b\\\\c\\x01\\xff") == 0 && n == strlen(buf), "quote escapes: %s", buf);
    memset(big, 'x', sizeof big);
    n = ck_cidr_quote(big, sizeof big, buf, sizeof buf);
    CHECK(n < CK_QUOTE_MAX && strcmp(buf + n - 3, "...") == 0, "quote cuts long input: %zu", n);
    memset(big, 0x80, sizeof big);
    n = ck_cidr_quote(big, sizeof big, buf, sizeof buf);
    CHECK(n < CK_QUOTE_MAX && buf[n] == '\0', "quote bounded for binary input: %zu", n);
}

static void test_list_split(void)
{
    const char *s = "\n 1.2.3.4,,5.6.7.8\r\n\t::1 ,\n";
    const char *want[] = {"1.2.3.4", "5.6.7.8", "::1"};
    size_t pos = 0, start, elen, n = 0;
    while (ck_list_next(s, strlen(s), &pos, &start, &elen)) {
        CHECK(n < 3 && elen == strlen(want[n]) && memcmp(s + start, want[n], elen) == 0,
              "piece %zu", n);
        n++;
    }
    CHECK(n == 3, "three pieces, got %zu", n);
    pos = 0;
    CHECK(!ck_list_next(" ,\n\r\t", 5, &pos, &start, &elen), "only separators: no piece");
    pos = 0;
    CHECK(!ck_list_next("", 0, &pos, &start, &elen), "empty list: no piece");
    CHECK(ck_list_is_separator(',') && ck_list_is_separator('\r') && !ck_list_is_separator(';') &&
              !ck_list_is_separator('\v'),
          "separator set");
}

/* The server's reading of a stored string: spaces removed, '\n' only, trimmed, commas deleted. */
static void test_server_split(void)
{
    static const struct {
        const char *in;
        const char *want[4]; /* pieces, NULL-terminated */
    } cases[] = {
        {"1.2.3.4, 5.6.7.8", {"1.2.3.45.6.7.8", NULL}},
        {"1.2.3.4\r\n5.6.7.8\n\n", {"1.2.3.4", "5.6.7.8", NULL}},
        {" 10.1.2.3 / 8 \n,\t::1,\n\t,1.2.3.4", {"10.1.2.3/8", "\t::1", "1.2.3.4", NULL}},
        {"1.2.3.4;5.6.7.8\t9\n[::1]\n1.2.3.4:80",
         {"1.2.3.4;5.6.7.8\t9", "[::1]", "1.2.3.4:80", NULL}},
        {",,\n  \n\r\n", {NULL}},
        {"", {NULL}},
        {"\v2001:db8::/32\f", {"2001:db8::/32", NULL}},
    };
    size_t c;
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *s = cases[c].in;
        size_t len = strlen(s), pos = 0, blen, n = 0;
        char buf[64];
        while (ck_server_next(s, len, &pos, buf, &blen)) {
            const char *w = n < 3 ? cases[c].want[n] : NULL;
            CHECK(w != NULL && blen == strlen(w) && memcmp(buf, w, blen) == 0,
                  "server case %zu piece %zu: \"%.*s\"", c, n, (int)blen, buf);
            n++;
        }
        CHECK(cases[c].want[n] == NULL || n >= 3, "server case %zu: %zu pieces, more expected", c,
              n);
        CHECK(pos == len, "server case %zu: pos at the end", c);
    }
    {
        /* validity is ck_entry_parse's: the first piece of case 0 is invalid, the rest parse */
        ck_entry e;
        CHECK(ck_entry_parse("1.2.3.45.6.7.8", 14, &e) != CK_CIDR_OK, "glued entry invalid");
        CHECK(ck_entry_parse("10.1.2.3/8", 10, &e) == CK_CIDR_OK && e.kind == CK_ENTRY_NET4,
              "space-stripped CIDR valid");
        CHECK(ck_entry_parse("\t::1", 4, &e) != CK_CIDR_OK, "inner tab invalid");
    }
}

static void test_dedup(void)
{
    const char *text =
        "1.2.3.4 ::ffff:1.2.3.4 10.1.2.3/8 10.0.0.0/8 10.0.0.0/08 ::ffff:10.0.0.0/104 "
        "2001:db8::1 2001:DB8:0:0:0:0:0:1 1.2.3.4";
    const char *want[] = {"1.2.3.4", "10.0.0.0/8", "::ffff:10.0.0.0/104", "2001:db8::1"};
    ck_entry *e, *big;
    size_t n = parse_list(text, &e), i;
    CHECK(n == 9, "dedup input parsed: %zu", n);
    n = ck_entries_dedup(e, n);
    CHECK(n == 4, "dedup keeps 4, got %zu", n);
    for (i = 0; i < n && i < 4; i++) {
        char buf[CK_ENTRY_TEXT_MAX];
        ck_entry_format(&e[i], buf, sizeof buf);
        CHECK(strcmp(buf, want[i]) == 0, "dedup order %zu: %s", i, buf);
    }
    free(e);

    /* the hashed path: 1000 entries, every one written twice, in order */
    big = (ck_entry *)malloc(2000 * sizeof *big);
    for (i = 0; i < 1000; i++) {
        char buf[32];
        int len =
            snprintf(buf, sizeof buf, "10.%u.%u.0/24", (unsigned)(i / 256), (unsigned)(i % 256));
        ck_entry_parse(buf, (size_t)len, &big[i]);
        big[1000 + (999 - i)] = big[i];
    }
    n = ck_entries_dedup(big, 2000);
    CHECK(n == 1000, "hashed dedup keeps 1000, got %zu", n);
    for (i = 0; i < n; i++) {
        if (big[i].addr[13] != i / 256 || big[i].addr[14] != i % 256) {
            CHECK(0, "hashed dedup order broken at %zu", i);
            break;
        }
    }
    free(big);
}

/* ================================================================ clients */

static void test_client_parse(void)
{
    static const struct {
        const char *in;
        int ok;
        const char *text;
    } cases[] = {
        {"1.2.3.4", 1, "1.2.3.4"},
        {"::ffff:1.2.3.4", 1, "1.2.3.4"},
        {"::1", 1, "::1"},
        {"2001:DB8::1", 1, "2001:db8::1"},
        {"::1.2.3.4", 1, "::102:304"},
        {"1.2.3.4/32", 0, NULL},
        {"::/0", 0, NULL},
        {"fe80::1%eth0", 0, NULL},
        {"1.2.3.4:80", 0, NULL},
        {" 1.2.3.4", 0, NULL},
        {"", 0, NULL},
        {"01.2.3.4", 0, NULL},
        {"[::1]", 0, NULL},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_addr a;
        char buf[CK_ENTRY_TEXT_MAX];
        int ok = ck_addr_parse(cases[i].in, strlen(cases[i].in), &a);
        CHECK(ok == cases[i].ok, "addr_parse(\"%s\") = %d", cases[i].in, ok);
        if (ok && cases[i].ok) {
            ck_addr_format(&a, buf, sizeof buf);
            CHECK(strcmp(buf, cases[i].text) == 0, "addr_format(\"%s\") = %s", cases[i].in, buf);
        }
    }
    {
        ck_addr a;
        CHECK(ck_addr_from_bytes("\x0a\x00\x00\x01", 4, &a) &&
                  memcmp(a.b, "\0\0\0\0\0\0\0\0\0\0\xff\xff\x0a\0\0\x01", 16) == 0,
              "4-byte binary becomes the mapped form");
        CHECK(!ck_addr_from_bytes("\x0a\x00\x00\x01\x02", 5, &a), "5-byte binary refused");
    }
}

/* ================================================================ membership */

typedef struct member_case {
    const char *list;
    const char *client;
    int want;
} member_case;

static const member_case member_cases[] = {
    /* plain addresses: IP.Equal */
    {"1.2.3.4", "1.2.3.4", 1},
    {"1.2.3.4", "::ffff:1.2.3.4", 1},
    {"1.2.3.4", "::1.2.3.4", 0},
    {"1.2.3.4", "1.2.3.5", 0},
    {"::ffff:1.2.3.4", "1.2.3.4", 1},
    {"::1.2.3.4", "1.2.3.4", 0},
    {"::1.2.3.4", "::1.2.3.4", 1},
    {"::1.2.3.4", "::102:304", 1},
    {"::1", "::1", 1},
    {"::1", "0:0:0:0:0:0:0:1", 1},
    {"::1", "::2", 0},
    {"::1", "127.0.0.1", 0},
    /* IPv4 CIDRs */
    {"10.0.0.0/8", "10.255.255.255", 1},
    {"10.0.0.0/8", "10.0.0.0", 1},
    {"10.0.0.0/8", "11.0.0.0", 0},
    {"10.0.0.0/8", "9.255.255.255", 0},
    {"10.0.0.0/8", "::ffff:10.1.1.1", 1},
    {"10.0.0.0/8", "::10.1.1.1", 0},
    {"10.0.0.0/8", "::a01:101", 0},
    {"10.1.2.3/8", "10.200.0.1", 1},
    {"1.2.3.4/32", "1.2.3.4", 1},
    {"1.2.3.4/32", "1.2.3.5", 0},
    {"0.0.0.0/0", "1.2.3.4", 1},
    {"0.0.0.0/0", "255.255.255.255", 1},
    {"0.0.0.0/0", "::ffff:8.8.8.8", 1},
    {"0.0.0.0/0", "::1", 0},
    {"0.0.0.0/0", "2001:db8::1", 0},
    /* IPv6 CIDRs */
    {"::/0", "::1", 1},
    {"::/0", "2001:db8::1", 1},
    {"::/0", "::1.2.3.4", 1},
    {"::/0", "1.2.3.4", 0},
    {"::/0", "::ffff:1.2.3.4", 0},
    {"::/80", "::ffff:1.2.3.4", 0},
    {"::/80", "::fffe:0:1", 1},
    {"2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1},
    {"2001:db8::/32", "2001:db9::", 0},
    {"2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 0},
    {"2001:db8::1/128", "2001:db8::1", 1},
    {"2001:db8::1/128", "2001:db8::2", 0},
    {"2001:db8::5/126", "2001:db8::7", 1},
    {"2001:db8::5/126", "2001:db8::8", 0},
    /* IPv4-mapped CIDRs: the network goes through To4 (networkNumberAndMask) */
    {"::ffff:0:0/96", "1.2.3.4", 1},
    {"::ffff:0:0/96", "::ffff:1.2.3.4", 1},
    {"::ffff:0:0/96", "::1", 0},
    {"::ffff:0:0/96", "::1.2.3.4", 0},
    {"::ffff:1.2.3.0/120", "1.2.3.200", 1},
    {"::ffff:1.2.3.0/120", "1.2.4.0", 0},
    {"::ffff:1.2.3.4/128", "1.2.3.4", 1},
    {"::ffff:1.2.3.4/90", "1.2.3.4", 0},
    {"::ffff:1.2.3.4/90", "::ffc0:0:1", 1},
    {"::ffff:1.2.3.4/95", "1.2.3.4", 0},
    {"::ffff:1.2.3.4/95", "::fffe:1:2", 1},
    {"::ffff:1.2.3.4/95", "::ffff:1.2.3.4", 0},
    /* several entries */
    {"1.2.3.4, 10.0.0.0/8\n2001:db8::/32", "10.9.9.9", 1},
    {"1.2.3.4, 10.0.0.0/8\n2001:db8::/32", "2001:db8::abcd", 1},
    {"1.2.3.4, 10.0.0.0/8\n2001:db8::/32", "192.168.0.1", 0},
/* a wide range spanning several index buckets, then 9 starts in one bucket */
#define CK_T_WIDE4                                                                                 \
    "10.0.0.0/9 10.128.0.1 10.128.0.3 10.128.0.5 10.128.0.7 10.128.0.9 "                           \
    "10.128.0.11 10.128.0.13 10.128.0.15 10.128.0.17"
    {CK_T_WIDE4, "10.127.255.255", 1},
    {CK_T_WIDE4, "10.100.0.0", 1},
    {CK_T_WIDE4, "10.128.0.0", 0},
    {CK_T_WIDE4, "10.128.0.17", 1},
    {CK_T_WIDE4, "10.128.0.18", 0},
#define CK_T_WIDE6                                                                                 \
    "2001:db8::/33 2001:db8:8000::1 2001:db8:8000::3 2001:db8:8000::5 "                            \
    "2001:db8:8000::7 2001:db8:8000::9 2001:db8:8000::b 2001:db8:8000::d "                         \
    "2001:db8:8000::f 2001:db8:8000::11"
    {CK_T_WIDE6, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff", 1},
    {CK_T_WIDE6, "2001:db8:6000::", 1},
    {CK_T_WIDE6, "2001:db8:8000::", 0},
    {CK_T_WIDE6, "2001:db8:8000::11", 1},
    {CK_T_WIDE6, "2001:db8:8000::12", 0},
    /* empty list: no restriction at all */
    {"", "1.2.3.4", 1},
    {"", "::1", 1},
    {"", "not an address", 1},
    /* unparsable clients are never admitted */
    {"0.0.0.0/0 ::/0", "1.2.3.4:80", 0},
    {"0.0.0.0/0 ::/0", "fe80::1%eth0", 0},
    {"0.0.0.0/0 ::/0", "", 0},
    {"0.0.0.0/0 ::/0", "::ffff:1.2.3.4/32", 0},
    {"0.0.0.0/0 ::/0", "01.2.3.4", 0},
    {"0.0.0.0/0 ::/0", "localhost", 0},
};

static void test_membership(void)
{
    size_t i;
    for (i = 0; i < sizeof member_cases / sizeof member_cases[0]; i++) {
        const member_case *c = &member_cases[i];
        ck_entry *e;
        size_t n = parse_list(c->list, &e), j;
        ck_matcher *m;
        ck_addr a;
        int got, parsed;
        if (n == (size_t)-1) {
            CHECK(0, "list \"%s\" does not parse", c->list);
            continue;
        }
        m = ck_matcher_new(e, n);
        got = ck_matcher_contains_text(m, c->client, strlen(c->client));
        CHECK(got == c->want, "[%s] contains(\"%s\") = %d, want %d", c->list, c->client, got,
              c->want);
        parsed = ck_addr_parse(c->client, strlen(c->client), &a);
        if (parsed) {
            int ref = 0, go;
            go_ip client = go_slice(a.b, 16);
            go_entry *g;
            for (j = 0; j < n; j++)
                ref |= ck_entry_contains(&e[j], &a);
            g = go_parse_list(e, n);
            go = go_list_admits(g, n, client);
            free(g);
            CHECK((n == 0 ? 1 : ref) == c->want, "[%s] entry_contains(\"%s\") = %d", c->list,
                  c->client, ref);
            CHECK(go == c->want, "[%s] Go transcription(\"%s\") = %d", c->list, c->client, go);
            CHECK(ck_matcher_contains(m, &a) == c->want, "[%s] contains(addr \"%s\")", c->list,
                  c->client);
            CHECK(ck_matcher_contains_bytes(m, a.b, 16) == c->want, "[%s] contains(16 bytes %s)",
                  c->list, c->client);
            if (memcmp(a.b, go_v4_in_v6_prefix, 12) == 0)
                CHECK(ck_matcher_contains_bytes(m, a.b + 12, 4) == c->want,
                      "[%s] contains(4 bytes %s)", c->list, c->client);
        }
        ck_matcher_free(m);
        free(e);
    }
}

static void test_binary_lengths(void)
{
    ck_entry *e;
    size_t n = parse_list("10.0.0.0/8", &e);
    ck_matcher *m = ck_matcher_new(e, n), *empty = ck_matcher_new(NULL, 0);
    CHECK(ck_matcher_contains_bytes(m, "\x0a\x01\x02\x03", 4) == 1, "binary 10.1.2.3");
    CHECK(ck_matcher_contains_bytes(m, "\x0b\x01\x02\x03", 4) == 0, "binary 11.1.2.3");
    CHECK(ck_matcher_contains_bytes(m, "\x0a\x01\x02", 3) == 0, "3 bytes");
    CHECK(ck_matcher_contains_bytes(m, "\x0a\x01\x02\x03\x04", 5) == 0, "5 bytes");
    CHECK(ck_matcher_contains_bytes(empty, "\x0a", 1) == 1, "empty list admits anything");
    CHECK(ck_matcher_count(empty) == 0, "empty list has no ranges");
    ck_matcher_free(empty);
    ck_matcher_free(m);
    ck_matcher_free(NULL);
    free(e);
}

static void test_merging(void)
{
    static const struct {
        const char *list;
        size_t ranges;
    } cases[] = {
        {"10.0.0.0/9 10.128.0.0/9", 1},
        {"1.2.3.4 1.2.3.5", 1},
        {"1.2.3.4 1.2.3.6", 2},
        {"0.0.0.0/0 255.255.255.255 1.2.3.4", 1},
        {"10.0.0.0/8 10.1.0.0/16 10.1.2.3", 1},
        {"1.2.3.4 ::ffff:1.2.3.4 ::ffff:1.2.3.4/128", 1},
        {"::/0 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
        {"2001:db8::/33 2001:db8:8000::/33", 1},
        {"2001:db8::1 2001:db8::2 2001:db8::4", 2},
        {"::ffff:0:0/96 1.2.3.4", 1},
        {"::/0 0.0.0.0/0", 2},
        {"::ffff:1.2.3.4/90 1.2.3.4", 2},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_entry *e;
        size_t n = parse_list(cases[i].list, &e);
        ck_matcher *m = ck_matcher_new(e, n);
        CHECK(m != NULL && ck_matcher_count(m) == cases[i].ranges, "[%s] %zu ranges, want %zu",
              cases[i].list, m ? ck_matcher_count(m) : 0, cases[i].ranges);
        ck_matcher_free(m);
        free(e);
    }
}

/* ================================================================ randomized cross-check */

static void random_v4(uint8_t *b, int clustered)
{
    uint32_t v = (uint32_t)rng();
    if (clustered)
        v = 0x0a000000u | (v & 0x000fffffu); /* 10.0.0.0/12 */
    memcpy(b, go_v4_in_v6_prefix, 12);
    b[12] = (uint8_t)(v >> 24);
    b[13] = (uint8_t)(v >> 16);
    b[14] = (uint8_t)(v >> 8);
    b[15] = (uint8_t)v;
}

static void random_v6(uint8_t *b, int clustered)
{
    uint64_t h = rng(), l = rng();
    int i;
    for (i = 0; i < 8; i++) {
        b[i] = (uint8_t)(h >> (56 - 8 * i));
        b[8 + i] = (uint8_t)(l >> (56 - 8 * i));
    }
    if (clustered) { /* 2001:db8::/48 with a sparse tail */
        memcpy(b, "\x20\x01\x0d\xb8\x00\x00", 6);
        memset(b + 6, 0, 8);
        b[7] = (uint8_t)(rng() & 3);
        b[14] &= 0x0f;
    }
}

/* Writes b (16 bytes) as uncompressed hex groups, sometimes in capitals. */
static int text_v6_full(char *out, size_t size, const uint8_t *b)
{
    const char *fmt = (rng() & 1) ? "%x:%x:%x:%x:%x:%x:%x:%x" : "%X:%X:%X:%X:%X:%X:%X:%X";
    return snprintf(out, size, fmt, b[0] << 8 | b[1], b[2] << 8 | b[3], b[4] << 8 | b[5],
                    b[6] << 8 | b[7], b[8] << 8 | b[9], b[10] << 8 | b[11], b[12] << 8 | b[13],
                    b[14] << 8 | b[15]);
}

/* Short prefixes (under /8, or /16 for IPv6) admit most clients; only small
 * lists get them, so that big lists still refuse some. */
static int wide_prefixes;

/* One random entry as text, in a form the server accepts. */
static void random_entry_text(char *out, size_t size)
{
    uint8_t b[16];
    unsigned r = rng_below(100), prefix;
    int clustered = rng_below(4) != 0;
    char addr[64];
    ck_addr a;

    if (r < 30) { /* IPv4 address, sometimes written IPv4-mapped */
        random_v4(b, clustered);
        if (rng_below(5) == 0)
            snprintf(out, size, "::ffff:%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
        else
            snprintf(out, size, "%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
        return;
    }
    if (r < 55) { /* IPv4 CIDR with host bits */
        random_v4(b, clustered);
        prefix = (wide_prefixes && rng_below(50) == 0) ? rng_below(8)
                 : rng_below(10) == 0                  ? 8 + rng_below(8)
                                                       : 16 + rng_below(17);
        snprintf(out, size, "%u.%u.%u.%u/%u", b[12], b[13], b[14], b[15], prefix);
        return;
    }
    if (r < 62) { /* IPv4-mapped IPv6 CIDR, both sides of /96 */
        random_v4(b, clustered);
        prefix = 88 + rng_below(41);
        snprintf(out, size, "::ffff:%u.%u.%u.%u/%u", b[12], b[13], b[14], b[15], prefix);
        return;
    }
    if (r < 65) { /* IPv4-compatible address */
        random_v4(b, clustered);
        snprintf(out, size, "::%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
        return;
    }
    random_v6(b, clustered);
    if (rng_below(2)) {
        text_v6_full(addr, sizeof addr, b);
    } else {
        memcpy(a.b, b, 16);
        ck_addr_format(&a, addr, sizeof addr);
    }
    if (r < 80) {
        snprintf(out, size, "%s", addr);
        return;
    }
    prefix = (wide_prefixes && rng_below(50) == 0) ? rng_below(16)
             : clustered                           ? 40 + rng_below(89)
                                                   : 16 + rng_below(113);
    snprintf(out, size, "%s/%u", addr, prefix);
}

static void add_be(uint8_t *b, int delta) /* b += delta (+1 or -1), 128-bit wrap */
{
    int i;
    for (i = 15; i >= 0; i--) {
        if (delta > 0) {
            if (++b[i] != 0)
                break;
        } else {
            if (b[i]-- != 0)
                break;
        }
    }
}

/* A client address near an entry's edges or inside it, or anywhere. */
static void random_client(const ck_entry *e, size_t n, uint8_t *b)
{
    unsigned r = rng_below(100);
    if (n > 0 && r < 60) {
        const ck_entry *x = &e[rng_below((unsigned)n)];
        unsigned pfx = x->kind == CK_ENTRY_NET4   ? 96u + x->prefix
                       : x->kind == CK_ENTRY_NET6 ? x->prefix
                                                  : 128u;
        unsigned bit, how = rng_below(5);
        memcpy(b, x->addr, 16);
        for (bit = pfx; bit < 128; bit++) { /* host part: zeros, ones or random */
            unsigned one = how == 1 || how == 4 || (how == 2 && (rng() & 1));
            if (one)
                b[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
        }
        if (how == 3)
            add_be(b, -1); /* just below the network */
        if (how == 4)
            add_be(b, +1);     /* just above the last address */
        if (rng_below(8) == 0) /* the same low bits in the other family's form */
            b[11] = b[10] = (uint8_t)(b[10] == 0xff ? 0 : 0xff);
        return;
    }
    if (r < 80)
        random_v4(b, rng_below(2));
    else
        random_v6(b, rng_below(2));
}

/* Cluster mode: entries and clients share their first cluster_bits bits with
 * cluster_base (16-byte form), so the index key runs past the common prefix. */
static unsigned cluster_bits;
static uint8_t cluster_base[16];

static void randomize_after(uint8_t *b, unsigned from)
{
    unsigned bit;
    for (bit = from; bit < 128; bit++) {
        uint8_t m = (uint8_t)(0x80 >> (bit % 8));
        b[bit / 8] = (uint8_t)((rng() & 1) ? (b[bit / 8] | m) : (b[bit / 8] & ~m));
    }
}

static void cluster_entry_text(char *out, size_t size)
{
    uint8_t b[16];
    ck_addr a;
    char addr[CK_ENTRY_TEXT_MAX];
    int is4 = memcmp(cluster_base, go_v4_in_v6_prefix, 12) == 0;
    /* host parts up to half the cluster's width, mostly short: many ranges */
    unsigned span = 128 - cluster_bits, host = rng_below(span / 2 + 1) * rng_below(2) / 2;
    unsigned prefix = 128 - (rng_below(4) == 0 ? rng_below(span / 2 + 1) : host);
    memcpy(b, cluster_base, 16);
    randomize_after(b, cluster_bits);
    memcpy(a.b, b, 16);
    ck_addr_format(&a, addr, sizeof addr);
    if (rng_below(3) == 0)
        snprintf(out, size, "%s", addr);
    else
        snprintf(out, size, "%s/%u", addr, is4 ? prefix - 96 : prefix);
}

static void cross_check(size_t entries, size_t clients)
{
    char text[96];
    ck_entry *e = (ck_entry *)malloc(entries * sizeof *e);
    ck_matcher *m;
    go_entry *g;
    size_t i, mismatches = 0, bad_parse = 0, admitted = 0;
    if (e == NULL)
        abort();
    wide_prefixes = entries <= 100;
    for (i = 0; i < entries; i++) {
        int code;
        if (cluster_bits > 0)
            cluster_entry_text(text, sizeof text);
        else
            random_entry_text(text, sizeof text);
        code = ck_entry_parse(text, strlen(text), &e[i]);
        if (code != CK_CIDR_OK) {
            if (bad_parse++ < 3)
                fprintf(stderr, "random entry \"%s\" refused: %s\n", text, ck_cidr_strerror(code));
            i--;
        }
    }
    CHECK(bad_parse == 0, "%zu random entries refused", bad_parse);
    m = ck_matcher_new(e, entries);
    CHECK(m != NULL, "matcher for %zu entries", entries);
    if (m == NULL) {
        free(e);
        return;
    }
    g = go_parse_list(e, entries);
    for (i = 0; i < clients; i++) {
        uint8_t b[16];
        ck_addr a;
        char atext[CK_ENTRY_TEXT_MAX];
        int want, fast, via_text, via_bytes, is4;
        random_client(e, entries, b);
        if (cluster_bits > 0 && rng_below(3) == 0) {
            memcpy(b, cluster_base, 16);
            randomize_after(b, cluster_bits);
        }
        memcpy(a.b, b, 16);
        is4 = memcmp(b, go_v4_in_v6_prefix, 12) == 0;
        want = go_list_admits(g, entries, go_slice(b, 16));
        admitted += (size_t)want;
        fast = ck_matcher_contains(m, &a);
        ck_addr_format(&a, atext, sizeof atext);
        via_text = ck_matcher_contains_text(m, atext, strlen(atext));
        via_bytes =
            is4 ? ck_matcher_contains_bytes(m, b + 12, 4) : ck_matcher_contains_bytes(m, b, 16);
        if (is4 && go_list_admits(g, entries, go_slice(b + 12, 4)) != want)
            via_bytes = -1; /* Go itself must agree on the 4-byte form */
        if (fast != want || via_text != want || via_bytes != want) {
            if (mismatches++ < 5)
                fprintf(stderr, "%zu entries: client %s: Go %d, matcher %d, text %d, bytes %d\n",
                        entries, atext, want, fast, via_text, via_bytes);
        }
    }
    free(g);
    CHECK(mismatches == 0, "%zu entries x %zu clients: %zu mismatches", entries, clients,
          mismatches);
    /* a check that cannot fail unless both answers occur is no check */
    CHECK(admitted > clients / 20 && admitted < clients - clients / 20,
          "%zu entries: %zu of %zu clients admitted (too one-sided to test)", entries, admitted,
          clients);

    /* the normalised, de-duplicated list admits exactly the same clients */
    {
        size_t kept = ck_entries_dedup(e, entries), diff = 0;
        ck_entry *norm = (ck_entry *)malloc((kept ? kept : 1) * sizeof *norm);
        ck_matcher *m2;
        for (i = 0; i < kept; i++) {
            char t[CK_ENTRY_TEXT_MAX];
            size_t len = ck_entry_format(&e[i], t, sizeof t);
            if (ck_entry_parse(t, len, &norm[i]) != CK_CIDR_OK ||
                memcmp(&norm[i], &e[i], sizeof *norm))
                diff++;
        }
        CHECK(diff == 0, "%zu normalised entries do not reparse to themselves", diff);
        m2 = ck_matcher_new(norm, kept);
        for (i = 0; i < clients / 10 && m2 != NULL; i++) {
            uint8_t b[16];
            ck_addr a;
            random_client(norm, kept, b);
            memcpy(a.b, b, 16);
            if (ck_matcher_contains(m2, &a) != ck_matcher_contains(m, &a))
                diff++;
        }
        CHECK(m2 != NULL && diff == 0, "normalised list of %zu admits differently (%zu)", kept,
              diff);
        ck_matcher_free(m2);
        free(norm);
    }
    ck_matcher_free(m);
    free(e);
}

/* Lists inside one network: the matcher's index starts after a long common
 * prefix (IPv4 /8../28; IPv6 on both sides of the 64-bit word boundary). */
static void cross_check_clusters(size_t clients)
{
    static const unsigned fixed[] = {104, 112, 120, 124, 20, 48, 56, 60, 62, 64, 70, 90, 110};
    size_t i;
    for (i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        cluster_bits = fixed[i];
        if (fixed[i] > 96) {
            random_v4(cluster_base, 0);
        } else {
            random_v6(cluster_base, 0);
            cluster_base[0] = 0x20; /* never IPv4-mapped */
        }
        cross_check(200 + 300 * (i % 3), clients);
    }
    cluster_bits = 0;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {1, 3, 8, 10, 12, 37, 100, 500, 1000, 5000};
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    size_t i;

    test_entry_syntax();
    test_entry_kinds();
    test_error_texts();
    test_format_buffer();
    test_quote();
    test_list_split();
    test_server_split();
    test_dedup();
    test_client_parse();
    test_membership();
    test_binary_lengths();
    test_merging();
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        cross_check(sizes[i], quick ? 2000 : 100000);
    cross_check_clusters(quick ? 1000 : 20000);

    printf("cidr: %lu passed, %lu failed\n", passes, fails);
    return fails == 0 ? 0 : 1;
}
