/*
 * ck_cidr.c - allowlist entries and client addresses parsed exactly as Go's
 * net.ParseIP / net.ParseCIDR (netip-based, Go >= 1.22) parse them, their
 * normalised text, and the range-table matcher. Pure C, no Lua; see ck_cidr.h
 * for the membership rules this reproduces.
 */
#include <stdlib.h>
#include <string.h>

#include "ck_cidr.h"

/* ================================================================ helpers */

/* Go's dtoi gives up at this value (net/parse.go "big"). */
#define CK_DTOI_BIG 0xFFFFFF

static const uint8_t ck_v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_v4_mapped(const uint8_t *b)
{
    return memcmp(b, ck_v4_mapped_prefix, 12) == 0;
}

static uint32_t load_be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static uint64_t load_be64(const uint8_t *b)
{
    return (uint64_t)load_be32(b) << 32 | load_be32(b + 4);
}

static void store_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static void set_v4_mapped(uint8_t *b, uint32_t v4)
{
    memcpy(b, ck_v4_mapped_prefix, 12);
    store_be32(b + 12, v4);
}

/* Hex digit value + 1, 0 for other bytes: a table, because digits and letters
 * mixed at random make a compare-based test mispredict. */
static const uint8_t ck_hex_plus1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16};

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Clears every bit after the first prefix bits (prefix <= 8 * len) of a len-byte address. */
static void mask_bytes(uint8_t *b, size_t len, unsigned prefix)
{
    size_t whole = prefix / 8;
    if (whole < len) {
        b[whole] &= (uint8_t)(0xff00u >> (prefix % 8));
        memset(b + whole + 1, 0, len - whole - 1);
    }
}

/* The error code for a character Go's parsers stop on. */
static int unexpected_char(unsigned char c)
{
    switch (c) {
    case '%':
        return CK_CIDR_EZONE;
    case '[':
    case ']':
        return CK_CIDR_EBRACKETS;
    case '-':
    case '*':
        return CK_CIDR_ERANGE;
    default:
        return CK_CIDR_EINVALID;
    }
}

/* ================================================================ parsing */

/*
 * Go's parseIPv4Fields: four decimal fields 0..255 without leading zeros.
 * Stores the address as a host-order integer.
 */
static int parse_v4(const unsigned char *s, size_t len, uint32_t *out)
{
    uint32_t acc = 0;
    unsigned val = 0, digits = 0, pos = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned c = s[i];
        if (c - '0' < 10u) {
            if (digits == 1 && val == 0)
                return CK_CIDR_ELEADING_ZERO;
            val = val * 10 + (c - '0');
            digits++;
            if (val > 255)
                return CK_CIDR_EOCTET;
        } else if (c == '.') {
            if (i == 0 || i == len - 1 || s[i - 1] == '.' || pos == 3)
                return CK_CIDR_EINVALID;
            acc = acc << 8 | val;
            pos++;
            val = 0;
            digits = 0;
        } else if (c == ':' && pos == 3 && digits > 0) {
            /* "10.0.0.1:80": a complete address followed by a port */
            size_t j = i + 1;
            while (j < len && s[j] >= '0' && s[j] <= '9')
                j++;
            return (j == len && j > i + 1) ? CK_CIDR_EPORT : CK_CIDR_EINVALID;
        } else {
            return unexpected_char((unsigned char)c);
        }
    }
    if (pos < 3)
        return CK_CIDR_EINVALID;
    *out = acc << 8 | val;
    return CK_CIDR_OK;
}

/* Go's netip parseIPv6, with any zone refused (ParseIP and ParseCIDR both
 * reject a zoned address, and an empty zone is a parse error). */
static int parse_v6(const unsigned char *s, size_t len, uint8_t ip[16])
{
    int ellipsis = -1; /* byte position of "::" in ip */
    int i = 0;         /* bytes of ip filled */
    size_t p = 0;      /* read position in s */

    if (memchr(s, '%', len) != NULL)
        return CK_CIDR_EZONE;
    memset(ip, 0, 16);
    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        ellipsis = 0;
        p = 2;
        if (p == len)
            return CK_CIDR_OK; /* "::" */
    }
    while (i < 16) {
        size_t off = 0;
        unsigned acc = 0;
        for (; p + off < len; off++) {
            unsigned d = ck_hex_plus1[s[p + off]];
            if (d == 0)
                break;
            acc = acc << 4 | (d - 1);
            if (off > 3)
                return CK_CIDR_EHEXGROUP;
        }
        if (off == 0)
            return unexpected_char(s[p]);
        if (p + off < len && s[p + off] == '.') {
            /* trailing IPv4: re-read this field as its first decimal field */
            uint32_t v4;
            int err;
            if ((ellipsis < 0 && i != 12) || i + 4 > 16)
                return CK_CIDR_EINVALID;
            err = parse_v4(s + p, len - p, &v4);
            if (err != CK_CIDR_OK)
                return err;
            store_be32(ip + i, v4);
            p = len;
            i += 4;
            break;
        }
        ip[i] = (uint8_t)(acc >> 8);
        ip[i + 1] = (uint8_t)acc;
        i += 2;
        p += off;
        if (p == len)
            break;
        if (s[p] != ':')
            return unexpected_char(s[p]);
        if (p + 1 == len)
            return CK_CIDR_EINVALID; /* trailing single colon */
        p++;
        if (s[p] == ':') {
            if (ellipsis >= 0)
                return CK_CIDR_EINVALID; /* second "::" */
            ellipsis = i;
            p++;
            if (p == len)
                break;
        }
    }
    if (p != len)
        return CK_CIDR_EINVALID; /* more than 8 groups */
    if (i < 16) {
        int n = 16 - i, j;
        if (ellipsis < 0)
            return CK_CIDR_EINVALID; /* too few groups */
        for (j = i - 1; j >= ellipsis; j--)
            ip[j + n] = ip[j];
        memset(ip + ellipsis, 0, (size_t)n);
    } else if (ellipsis >= 0) {
        return CK_CIDR_EINVALID; /* "::" standing for no group */
    }
    return CK_CIDR_OK;
}

/* Go's netip.ParseAddr (zone refused): the first of '.', ':' or '%' decides
 * the family. Fills the 16-byte form; *is4 tells an IPv4 text (Addr.Is4). */
static int parse_addr(const unsigned char *s, size_t len, uint8_t ip[16], int *is4)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (s[i] == '.') {
            uint32_t v4;
            int err = parse_v4(s, len, &v4);
            if (err == CK_CIDR_OK) {
                set_v4_mapped(ip, v4);
                *is4 = 1;
            }
            return err;
        }
        if (s[i] == ':') {
            *is4 = 0;
            return parse_v6(s, len, ip);
        }
        if (s[i] == '%')
            return CK_CIDR_EZONE;
    }
    return CK_CIDR_EINVALID;
}

/* A more helpful code for a refused address part (validity is already decided). */
static int refine_error(int code, const unsigned char *s, size_t len)
{
    size_t i;
    int colon = 0, range = 0;
    for (i = 0; i < len; i++) {
        switch (s[i]) {
        case '%':
            return CK_CIDR_EZONE;
        case '[':
        case ']':
            return CK_CIDR_EBRACKETS;
        case ':':
            colon = 1;
            break;
        case '-':
        case '*':
            range = 1;
            break;
        default:
            break;
        }
    }
    if (code != CK_CIDR_EINVALID && code != CK_CIDR_ERANGE)
        return code;
    if (!colon && len > 0 && is_alpha(s[0]))
        return CK_CIDR_EHOSTNAME;
    return range ? CK_CIDR_ERANGE : code;
}

int ck_entry_parse(const char *text, size_t len, ck_entry *out)
{
    const unsigned char *s = (const unsigned char *)text;
    const unsigned char *slash;
    size_t alen, mlen, i;
    unsigned long n = 0;
    int is4 = 0, err;

    if (len == 0)
        return CK_CIDR_EEMPTY;
    slash = (const unsigned char *)memchr(s, '/', len);
    alen = slash != NULL ? (size_t)(slash - s) : len;
    err = parse_addr(s, alen, out->addr, &is4);
    if (err != CK_CIDR_OK)
        return refine_error(err, s, alen);
    if (slash == NULL) {
        out->kind = CK_ENTRY_IP;
        out->prefix = 0;
        return CK_CIDR_OK;
    }
    /* Go's dtoi: decimal digits only (leading zeros fine), at least one */
    mlen = len - alen - 1;
    for (i = 0; i < mlen && s[alen + 1 + i] >= '0' && s[alen + 1 + i] <= '9'; i++) {
        n = n * 10 + (unsigned)(s[alen + 1 + i] - '0');
        if (n >= CK_DTOI_BIG)
            return is4 ? CK_CIDR_EPREFIX4 : CK_CIDR_EPREFIX6;
    }
    if (i == 0 || i != mlen)
        return CK_CIDR_EPREFIX;
    if (n > (is4 ? 32u : 128u))
        return is4 ? CK_CIDR_EPREFIX4 : CK_CIDR_EPREFIX6;
    out->prefix = (uint8_t)n;
    if (is4) {
        out->kind = CK_ENTRY_NET4;
        mask_bytes(out->addr + 12, 4, (unsigned)n);
    } else {
        out->kind = CK_ENTRY_NET6;
        mask_bytes(out->addr, 16, (unsigned)n);
    }
    return CK_CIDR_OK;
}

int ck_addr_parse(const char *text, size_t len, ck_addr *out)
{
    const unsigned char *s = (const unsigned char *)text;
    uint32_t v4;
    int is4;
    /* Fast path: a string the IPv4 parser accepts has '.' as its first
     * special character, so Go would have parsed it the same way. */
    if (parse_v4(s, len, &v4) == CK_CIDR_OK) {
        set_v4_mapped(out->b, v4);
        return 1;
    }
    return parse_addr(s, len, out->b, &is4) == CK_CIDR_OK;
}

int ck_addr_from_bytes(const void *p, size_t len, ck_addr *out)
{
    if (len == 4) {
        memcpy(out->b, ck_v4_mapped_prefix, 12);
        memcpy(out->b + 12, p, 4);
        return 1;
    }
    if (len == 16) {
        memcpy(out->b, p, 16);
        return 1;
    }
    return 0;
}

/* ================================================================ text */

static size_t fmt_uint(char *p, unsigned v)
{
    char tmp[12];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static size_t fmt_v4(char *p, const uint8_t *b)
{
    size_t n = 0;
    int i;
    for (i = 0; i < 4; i++) {
        if (i > 0)
            p[n++] = '.';
        n += fmt_uint(p + n, b[i]);
    }
    return n;
}

/* RFC 5952: lowercase, no leading zeros, the longest run (first on a tie) of
 * two or more zero groups as "::", IPv4-mapped addresses as ::ffff:a.b.c.d. */
static size_t fmt_v6(char *p, const uint8_t *b)
{
    static const char hex[] = "0123456789abcdef";
    unsigned g[8];
    int i, best = -1, best_len = 1, run = -1;
    size_t n = 0;

    if (is_v4_mapped(b)) {
        memcpy(p, "::ffff:", 7);
        return 7 + fmt_v4(p + 7, b + 12);
    }
    for (i = 0; i < 8; i++)
        g[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
    for (i = 0; i <= 8; i++) {
        if (i < 8 && g[i] == 0) {
            if (run < 0)
                run = i;
        } else if (run >= 0) {
            if (i - run > best_len) {
                best = run;
                best_len = i - run;
            }
            run = -1;
        }
    }
    for (i = 0; i < 8; i++) {
        int shift, started = 0;
        if (i == best) {
            p[n++] = ':';
            p[n++] = ':';
            i += best_len - 1;
            continue;
        }
        if (i > 0 && i != best + best_len)
            p[n++] = ':';
        for (shift = 12; shift >= 0; shift -= 4) {
            unsigned d = (g[i] >> shift) & 0xf;
            if (d != 0 || started || shift == 0) {
                p[n++] = hex[d];
                started = 1;
            }
        }
    }
    return n;
}

/* Copies n bytes of text into a size-byte buffer with snprintf's contract. */
static size_t copy_out(char *buf, size_t size, const char *text, size_t n)
{
    if (size > 0) {
        size_t k = n < size - 1 ? n : size - 1;
        memcpy(buf, text, k);
        buf[k] = '\0';
    }
    return n;
}

size_t ck_addr_format(const ck_addr *a, char *buf, size_t size)
{
    char tmp[CK_ENTRY_TEXT_MAX];
    size_t n = is_v4_mapped(a->b) ? fmt_v4(tmp, a->b + 12) : fmt_v6(tmp, a->b);
    return copy_out(buf, size, tmp, n);
}

size_t ck_entry_format(const ck_entry *e, char *buf, size_t size)
{
    char tmp[CK_ENTRY_TEXT_MAX];
    size_t n;
    switch (e->kind) {
    case CK_ENTRY_NET4:
        n = fmt_v4(tmp, e->addr + 12);
        break;
    case CK_ENTRY_NET6:
        n = fmt_v6(tmp, e->addr);
        break;
    default: /* a plain IPv4-mapped address equals its IPv4 form in Go */
        n = is_v4_mapped(e->addr) ? fmt_v4(tmp, e->addr + 12) : fmt_v6(tmp, e->addr);
        return copy_out(buf, size, tmp, n);
    }
    tmp[n++] = '/';
    n += fmt_uint(tmp + n, e->prefix);
    return copy_out(buf, size, tmp, n);
}

const char *ck_cidr_strerror(int code)
{
    switch (code) {
    case CK_CIDR_OK:
        return "valid";
    case CK_CIDR_EEMPTY:
        return "not an IP address or CIDR (empty)";
    case CK_CIDR_ELEADING_ZERO:
        return "not an IP address or CIDR (IPv4 fields must not have leading zeros)";
    case CK_CIDR_EOCTET:
        return "not an IP address or CIDR (IPv4 fields must be 0-255)";
    case CK_CIDR_EHEXGROUP:
        return "not an IP address or CIDR (IPv6 groups have at most 4 hex digits)";
    case CK_CIDR_EPREFIX:
        return "not an IP address or CIDR (the prefix length after \"/\" must be decimal digits)";
    case CK_CIDR_EPREFIX4:
        return "not an IP address or CIDR (prefix length out of range: 0-32 for IPv4)";
    case CK_CIDR_EPREFIX6:
        return "not an IP address or CIDR (prefix length out of range: 0-128 for IPv6)";
    case CK_CIDR_EZONE:
        return "not an IP address or CIDR (IPv6 zones such as %eth0 are not allowed)";
    case CK_CIDR_EBRACKETS:
        return "not an IP address or CIDR (brackets are not allowed)";
    case CK_CIDR_EPORT:
        return "not an IP address or CIDR (ports are not allowed)";
    case CK_CIDR_ERANGE:
        return "not an IP address or CIDR (ranges and wildcards are not allowed)";
    case CK_CIDR_EHOSTNAME:
        return "not an IP address or CIDR (host names are not allowed)";
    case CK_CIDR_ESEPARATOR:
        return "not an IP address or CIDR (one entry per array item)";
    default:
        return "not an IP address or CIDR";
    }
}

size_t ck_cidr_quote(const char *s, size_t len, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[CK_QUOTE_MAX];
    size_t n = 0, i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (n >= 60) {
            memcpy(tmp + n, "...", 3);
            n += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            tmp[n++] = '\\';
            tmp[n++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            tmp[n++] = (char)c;
        } else {
            tmp[n++] = '\\';
            tmp[n++] = 'x';
            tmp[n++] = hex[c >> 4];
            tmp[n++] = hex[c & 15];
        }
    }
    return copy_out(buf, size, tmp, n);
}

/* ================================================================ lists */

int ck_list_is_separator(unsigned char c)
{
    return c == '\n' || c == ',' || c == ' ' || c == '\t' || c == '\r';
}

int ck_list_next(const char *s, size_t len, size_t *pos, size_t *start, size_t *elen)
{
    size_t i = *pos;
    while (i < len && ck_list_is_separator((unsigned char)s[i]))
        i++;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    *start = i;
    while (i < len && !ck_list_is_separator((unsigned char)s[i]))
        i++;
    *elen = i - *start;
    *pos = i;
    return 1;
}

/* Go's strings.TrimSpace set, ASCII part (spaces are gone by then). */
static int ck_server_trimmed(unsigned char c)
{
    return c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == ' ';
}

int ck_server_next(const char *s, size_t len, size_t *pos, char *buf, size_t *blen)
{
    size_t i = *pos;
    while (i < len) {
        size_t end = i, n = 0, a, b, k;
        while (end < len && s[end] != '\n')
            end++;
        for (k = i; k < end; k++) /* 1. every space removed */
            if (s[k] != ' ')
                buf[n++] = s[k];
        a = 0; /* 2. trimmed */
        b = n;
        while (a < b && ck_server_trimmed((unsigned char)buf[a]))
            a++;
        while (b > a && ck_server_trimmed((unsigned char)buf[b - 1]))
            b--;
        for (k = a, n = 0; k < b; k++) /* 3. commas deleted */
            if (buf[k] != ',')
                buf[n++] = buf[k];
        i = end < len ? end + 1 : len;
        if (n > 0) {
            *pos = i;
            *blen = n;
            return 1;
        }
    }
    *pos = len;
    return 0;
}

/* ================================================================ dedup */

static uint64_t entry_hash(const ck_entry *e)
{
    const uint8_t *p = (const uint8_t *)e;
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    size_t i;
    for (i = 0; i < sizeof *e; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h ^ (h >> 29);
}

size_t ck_entries_dedup(ck_entry *e, size_t n)
{
    size_t kept = 0, i, cap = 64, *slots;

    if (n <= 32) {
        for (i = 0; i < n; i++) {
            size_t j;
            for (j = 0; j < kept; j++)
                if (memcmp(&e[j], &e[i], sizeof *e) == 0)
                    break;
            if (j == kept)
                e[kept++] = e[i];
        }
        return kept;
    }
    while (cap < 2 * n) {
        if (cap > ((size_t)-1) / 4 / sizeof *slots)
            return (size_t)-1;
        cap <<= 1;
    }
    slots = (size_t *)calloc(cap, sizeof *slots); /* kept index + 1; 0 = free */
    if (slots == NULL)
        return (size_t)-1;
    for (i = 0; i < n; i++) {
        size_t h = (size_t)entry_hash(&e[i]) & (cap - 1);
        int dup = 0;
        while (slots[h] != 0) {
            if (memcmp(&e[slots[h] - 1], &e[i], sizeof *e) == 0) {
                dup = 1;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (!dup) {
            e[kept] = e[i];
            slots[h] = ++kept;
        }
    }
    free(slots);
    return kept;
}

/* ================================================================ Go reference */

int ck_entry_contains(const ck_entry *e, const ck_addr *a)
{
    uint8_t net[16], mask[16];
    const uint8_t *nn, *m, *ip;
    size_t nnlen, mlen, iplen, i;

    if (e->kind == CK_ENTRY_IP) /* net.IP.Equal of two 16-byte forms */
        return memcmp(e->addr, a->b, 16) == 0;

    /* net.ParseCIDR: IPNet{IP: masked, Mask: CIDRMask(prefix, bits)} */
    memset(mask, 0xff, sizeof mask);
    if (e->kind == CK_ENTRY_NET4) {
        memcpy(net, e->addr + 12, 4);
        nnlen = mlen = 4;
    } else {
        memcpy(net, e->addr, 16);
        nnlen = mlen = 16;
    }
    mask_bytes(mask, mlen, e->prefix);
    /* networkNumberAndMask: the network number goes through IP.To4 */
    nn = net;
    m = mask;
    if (nnlen == 16 && is_v4_mapped(net)) {
        nn = net + 12;
        nnlen = 4;
    }
    if (mlen == 16 && nnlen == 4)
        m = mask + 12;
    /* IPNet.Contains: the client goes through IP.To4 too */
    ip = a->b;
    iplen = 16;
    if (is_v4_mapped(a->b)) {
        ip = a->b + 12;
        iplen = 4;
    }
    if (iplen != nnlen)
        return 0;
    for (i = 0; i < iplen; i++)
        if ((nn[i] & m[i]) != (ip[i] & m[i]))
            return 0;
    return 1;
}

/* ================================================================ matcher */

/* Families with at most this many ranges are scanned linearly. */
#define CK_LINEAR_MAX 8
/* Largest first-level index: 2^20 buckets. */
#define CK_INDEX_BITS_MAX 20

typedef struct ck_u128 {
    uint64_t hi, lo;
} ck_u128;

typedef struct ck_range6 {
    ck_u128 lo, hi;
} ck_range6;

struct ck_matcher {
    size_t n4, n6;
    const uint32_t *lo4, *hi4; /* sorted, disjoint, non-adjacent ranges */
    const ck_u128 *lo6, *hi6;
    const uint32_t *idx4, *idx6; /* (1 << bits) + 1 bucket starts, or NULL */
    unsigned skip4, bits4;       /* bucket = bits after the first skip bits */
    unsigned skip6, bits6;
    int allow_all; /* empty list */
};

static int u128_le(ck_u128 a, ck_u128 b)
{
    return a.hi < b.hi || (a.hi == b.hi && a.lo <= b.lo);
}

static int u128_lt(ck_u128 a, ck_u128 b)
{
    return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}

static unsigned clz64(uint64_t v) /* v != 0 */
{
#if defined(__GNUC__)
    return (unsigned)__builtin_clzll(v);
#else
    unsigned n = 0;
    while (!(v & 0x8000000000000000u)) {
        v <<= 1;
        n++;
    }
    return n;
#endif
}

static uint32_t host_mask4(unsigned prefix)
{
    return prefix >= 32 ? 0 : 0xffffffffu >> prefix;
}

static uint32_t key4(uint32_t x, unsigned skip, unsigned bits)
{
    return (uint32_t)(x << skip) >> (32 - bits);
}

static uint32_t key6(ck_u128 x, unsigned skip, unsigned bits)
{
    uint64_t w;
    if (skip == 0)
        w = x.hi;
    else if (skip < 64)
        w = x.hi << skip | x.lo >> (64 - skip);
    else
        w = x.lo << (skip - 64);
    return (uint32_t)(w >> (64 - bits));
}

/* Index width for n ranges whose values share their first skip bits. */
static unsigned index_bits(size_t n, unsigned skip, unsigned width)
{
    unsigned bits = 0;
    if (n <= CK_LINEAR_MAX || skip >= width)
        return 0;
    while (bits < CK_INDEX_BITS_MAX && ((size_t)2 << bits) <= n)
        bits++;
    if (bits > width - skip)
        bits = width - skip;
    return bits;
}

/* Sorts (lo << 32 | hi) pairs by lo: LSD radix, 8 bits a pass, skipping a pass
 * when every key has the same byte there. tmp holds n more. */
static void sort_ranges4(uint64_t *r, uint64_t *tmp, size_t n)
{
    size_t count[4][256], i;
    uint64_t *src = r, *dst = tmp, *swap;
    int pass;

    if (n < 32) { /* insertion sort */
        for (i = 1; i < n; i++) {
            uint64_t x = r[i];
            size_t j = i;
            for (; j > 0 && (r[j - 1] >> 32) > (x >> 32); j--)
                r[j] = r[j - 1];
            r[j] = x;
        }
        return;
    }
    memset(count, 0, sizeof count);
    for (i = 0; i < n; i++)
        for (pass = 0; pass < 4; pass++)
            count[pass][(r[i] >> (32 + 8 * pass)) & 0xff]++;
    for (pass = 0; pass < 4; pass++) {
        size_t *c = count[pass], sum = 0;
        unsigned shift = 32 + 8 * (unsigned)pass;
        if (c[(src[0] >> shift) & 0xff] == n)
            continue;
        for (i = 0; i < 256; i++) {
            size_t k = c[i];
            c[i] = sum;
            sum += k;
        }
        for (i = 0; i < n; i++)
            dst[c[(src[i] >> shift) & 0xff]++] = src[i];
        swap = src;
        src = dst;
        dst = swap;
    }
    if (src != r)
        memcpy(r, src, n * sizeof *r);
}

/* Sorts IPv6 ranges by lo: insertion-sorted runs, then bottom-up merges
 * between r and tmp (n more). */
static void sort_ranges6(ck_range6 *r, ck_range6 *tmp, size_t n)
{
    const size_t run = 16;
    ck_range6 *src = r, *dst = tmp, *swap;
    size_t i, width;

    for (i = 0; i < n; i += run) {
        size_t end = i + run < n ? i + run : n, k;
        for (k = i + 1; k < end; k++) {
            ck_range6 x = r[k];
            size_t j = k;
            for (; j > i && u128_lt(x.lo, r[j - 1].lo); j--)
                r[j] = r[j - 1];
            r[j] = x;
        }
    }
    for (width = run; width < n; width *= 2) {
        for (i = 0; i < n; i += 2 * width) {
            size_t a = i, amid = i + width < n ? i + width : n, b = amid;
            size_t bend = i + 2 * width < n ? i + 2 * width : n, o = i;
            while (a < amid && b < bend)
                dst[o++] = u128_lt(src[b].lo, src[a].lo) ? src[b++] : src[a++];
            while (a < amid)
                dst[o++] = src[a++];
            while (b < bend)
                dst[o++] = src[b++];
        }
        swap = src;
        src = dst;
        dst = swap;
    }
    if (src != r)
        memcpy(r, src, n * sizeof *r);
}

/* Merges sorted, overlapping or adjacent ranges in place; returns the count. */
static size_t merge4(uint64_t *r, size_t n)
{
    size_t out = 0, i;
    if (n == 0)
        return 0;
    for (i = 1; i < n; i++) {
        uint32_t cur_hi = (uint32_t)r[out], lo = (uint32_t)(r[i] >> 32), hi = (uint32_t)r[i];
        if (cur_hi == 0xffffffffu || lo <= cur_hi + 1) {
            if (hi > cur_hi)
                r[out] = (r[out] & 0xffffffff00000000u) | hi;
        } else {
            r[++out] = r[i];
        }
    }
    return out + 1;
}

static size_t merge6(ck_range6 *r, size_t n)
{
    size_t out = 0, i;
    if (n == 0)
        return 0;
    for (i = 1; i < n; i++) {
        ck_u128 next = r[out].hi; /* r[out].hi + 1, saturating */
        int full = (next.hi == UINT64_MAX && next.lo == UINT64_MAX);
        next.lo++;
        if (next.lo == 0)
            next.hi++;
        if (full || u128_le(r[i].lo, next)) {
            if (u128_lt(r[out].hi, r[i].hi))
                r[out].hi = r[i].hi;
        } else {
            r[++out] = r[i];
        }
    }
    return out + 1;
}

static void build_index4(uint32_t *idx, const uint32_t *lo, size_t n, unsigned skip, unsigned bits)
{
    size_t buckets = (size_t)1 << bits, k, j = 0;
    for (k = 0; k <= buckets; k++) {
        while (j < n && key4(lo[j], skip, bits) < k)
            j++;
        idx[k] = (uint32_t)j;
    }
}

static void build_index6(uint32_t *idx, const ck_u128 *lo, size_t n, unsigned skip, unsigned bits)
{
    size_t buckets = (size_t)1 << bits, k, j = 0;
    for (k = 0; k <= buckets; k++) {
        while (j < n && key6(lo[j], skip, bits) < k)
            j++;
        idx[k] = (uint32_t)j;
    }
}

ck_matcher *ck_matcher_new(const ck_entry *e, size_t n)
{
    size_t c4 = 0, c6 = 0, n4, n6, i, size, idx4_len = 0, idx6_len = 0;
    uint64_t *r4 = NULL;
    ck_range6 *r6 = NULL;
    ck_matcher *m = NULL;
    unsigned skip4 = 32, skip6 = 128, bits4, bits6;
    char *p;

    /* bucket starts are 32-bit; and 2 * n ranges of 32 bytes (plus the
     * header and index) must not overflow size_t where it is 32-bit */
    if (n > 0xffffffffu / 2 || n > (size_t)-1 / 128)
        return NULL;
    for (i = 0; i < n; i++) {
        if (e[i].kind == CK_ENTRY_NET4 || is_v4_mapped(e[i].addr))
            c4++;
        else
            c6++;
    }
    /* each with room for the sort's second buffer */
    if (c4 > 0 && (r4 = (uint64_t *)malloc(2 * c4 * sizeof *r4)) == NULL)
        goto fail;
    if (c6 > 0 && (r6 = (ck_range6 *)malloc(2 * c6 * sizeof *r6)) == NULL)
        goto fail;

    /* Every entry as an address range of the table its clients are looked up in. */
    c4 = c6 = 0;
    for (i = 0; i < n; i++) {
        const ck_entry *x = &e[i];
        if (x->kind == CK_ENTRY_NET4 || is_v4_mapped(x->addr)) {
            /* IPv4 net, plain IPv4(-mapped) address, or an IPv6 net whose
             * network address is IPv4-mapped (prefix >= 96), which Go
             * compares as the IPv4 net of prefix - 96 */
            uint32_t lo = load_be32(x->addr + 12);
            uint32_t host = 0;
            if (x->kind == CK_ENTRY_NET4)
                host = host_mask4(x->prefix);
            else if (x->kind == CK_ENTRY_NET6)
                host = host_mask4((unsigned)x->prefix - 96);
            r4[c4++] = (uint64_t)lo << 32 | (lo | host);
        } else {
            ck_range6 r;
            r.lo.hi = load_be64(x->addr);
            r.lo.lo = load_be64(x->addr + 8);
            r.hi = r.lo;
            if (x->kind == CK_ENTRY_NET6) {
                unsigned pfx = x->prefix;
                if (pfx < 64) {
                    r.hi.hi |= pfx == 0 ? UINT64_MAX : UINT64_MAX >> pfx;
                    r.hi.lo = UINT64_MAX;
                } else if (pfx < 128) {
                    r.hi.lo |= pfx == 64 ? UINT64_MAX : UINT64_MAX >> (pfx - 64);
                }
            }
            r6[c6++] = r;
        }
    }
    if (c4 > 0)
        sort_ranges4(r4, r4 + c4, c4);
    if (c6 > 0)
        sort_ranges6(r6, r6 + c6, c6);
    n4 = merge4(r4, c4);
    n6 = merge6(r6, c6);

    if (n4 > 0) {
        uint32_t x = (uint32_t)(r4[0] >> 32) ^ (uint32_t)r4[n4 - 1];
        skip4 = x == 0 ? 32 : clz64(x) - 32;
    }
    if (n6 > 0) {
        uint64_t xh = r6[0].lo.hi ^ r6[n6 - 1].hi.hi, xl = r6[0].lo.lo ^ r6[n6 - 1].hi.lo;
        skip6 = xh != 0 ? clz64(xh) : xl != 0 ? 64 + clz64(xl) : 128;
    }
    bits4 = index_bits(n4, skip4, 32);
    bits6 = index_bits(n6, skip6, 128);
    if (bits4 > 0)
        idx4_len = ((size_t)1 << bits4) + 1;
    if (bits6 > 0)
        idx6_len = ((size_t)1 << bits6) + 1;

    /* One block: header, IPv6 bounds (8-byte aligned), then 32-bit arrays. */
    size = sizeof *m + 2 * n6 * sizeof(ck_u128) + (2 * n4 + idx4_len + idx6_len) * sizeof(uint32_t);
    m = (ck_matcher *)malloc(size);
    if (m == NULL)
        goto fail;
    memset(m, 0, sizeof *m);
    p = (char *)(m + 1);
    m->n4 = n4;
    m->n6 = n6;
    m->allow_all = (n == 0);
    {
        ck_u128 *lo6 = (ck_u128 *)(void *)p, *hi6 = lo6 + n6;
        uint32_t *lo4 = (uint32_t *)(void *)(hi6 + n6), *hi4 = lo4 + n4;
        uint32_t *idx4 = hi4 + n4, *idx6 = idx4 + idx4_len;
        for (i = 0; i < n6; i++) {
            lo6[i] = r6[i].lo;
            hi6[i] = r6[i].hi;
        }
        for (i = 0; i < n4; i++) {
            lo4[i] = (uint32_t)(r4[i] >> 32);
            hi4[i] = (uint32_t)r4[i];
        }
        if (bits4 > 0)
            build_index4(idx4, lo4, n4, skip4, bits4);
        if (bits6 > 0)
            build_index6(idx6, lo6, n6, skip6, bits6);
        m->lo4 = lo4;
        m->hi4 = hi4;
        m->lo6 = lo6;
        m->hi6 = hi6;
        m->idx4 = bits4 > 0 ? idx4 : NULL;
        m->idx6 = bits6 > 0 ? idx6 : NULL;
    }
    m->skip4 = skip4;
    m->bits4 = bits4;
    m->skip6 = skip6;
    m->bits6 = bits6;
fail:
    free(r4);
    free(r6);
    return m;
}

void ck_matcher_free(ck_matcher *m)
{
    free(m);
}

size_t ck_matcher_count(const ck_matcher *m)
{
    return m->n4 + m->n6;
}

static int lookup4(const ck_matcher *m, uint32_t x)
{
    const uint32_t *lo = m->lo4, *hi = m->hi4;
    size_t n = m->n4, a = 0, len, base;

    if (n == 0 || x < lo[0] || x > hi[n - 1])
        return 0;
    if (n <= CK_LINEAR_MAX) {
        size_t i = 0;
        while (hi[i] < x) /* stops: x <= hi[n - 1] */
            i++;
        return lo[i] <= x;
    }
    len = n;
    if (m->idx4 != NULL) {
        uint32_t k = key4(x, m->skip4, m->bits4);
        a = m->idx4[k];
        len = m->idx4[k + 1] - a;
        if (len == 0) /* the last range starting before this bucket */
            return x <= hi[a - 1];
    }
    /* last range in [a, a + len) starting at or below x; a - 1 if none */
    base = a;
    while (len > 1) {
        size_t half = len >> 1;
        base = lo[base + half] <= x ? base + half : base;
        len -= half;
    }
    if (lo[base] > x)
        base--; /* only when base == a > 0: x >= lo[0] */
    return x <= hi[base];
}

static int lookup6(const ck_matcher *m, ck_u128 x)
{
    const ck_u128 *lo = m->lo6, *hi = m->hi6;
    size_t n = m->n6, a = 0, len, base;

    if (n == 0 || u128_lt(x, lo[0]) || u128_lt(hi[n - 1], x))
        return 0;
    if (n <= CK_LINEAR_MAX) {
        size_t i = 0;
        while (u128_lt(hi[i], x))
            i++;
        return u128_le(lo[i], x);
    }
    len = n;
    if (m->idx6 != NULL) {
        uint32_t k = key6(x, m->skip6, m->bits6);
        a = m->idx6[k];
        len = m->idx6[k + 1] - a;
        if (len == 0)
            return u128_le(x, hi[a - 1]);
    }
    base = a;
    while (len > 1) {
        size_t half = len >> 1;
        base = u128_le(lo[base + half], x) ? base + half : base;
        len -= half;
    }
    if (!u128_le(lo[base], x))
        base--;
    return u128_le(x, hi[base]);
}

int ck_matcher_contains(const ck_matcher *m, const ck_addr *a)
{
    ck_u128 x;
    if (m->allow_all)
        return 1;
    if (is_v4_mapped(a->b)) /* IP.To4 */
        return lookup4(m, load_be32(a->b + 12));
    x.hi = load_be64(a->b);
    x.lo = load_be64(a->b + 8);
    return lookup6(m, x);
}

int ck_matcher_contains_text(const ck_matcher *m, const char *s, size_t len)
{
    uint32_t v4;
    ck_addr a;
    if (m->allow_all)
        return 1;
    if (parse_v4((const unsigned char *)s, len, &v4) == CK_CIDR_OK)
        return lookup4(m, v4);
    if (!ck_addr_parse(s, len, &a))
        return 0;
    return ck_matcher_contains(m, &a);
}

int ck_matcher_contains_bytes(const ck_matcher *m, const void *p, size_t len)
{
    ck_addr a;
    if (m->allow_all)
        return 1;
    if (len == 4)
        return lookup4(m, load_be32((const uint8_t *)p));
    if (!ck_addr_from_bytes(p, len, &a))
        return 0;
    return ck_matcher_contains(m, &a);
}
