/*
 * ck_cidr.h - IP allowlist entries exactly as the server's Go code reads them
 * (net.ParseIP / net.ParseCIDR, Go >= 1.22), their normalised text, and a fast
 * matcher with Go's membership rules (IPNet.Contains, IP.Equal).
 * Pure C99 with no Lua dependency: unit-tested in test/c, fuzzed in fuzz/.
 *
 * Membership, as the server decides it for a client address c:
 *   - c is read as 16 bytes (IPv4 as ::ffff:a.b.c.d, like net.ParseIP); an
 *     IPv4 or IPv4-mapped client is compared as 4 bytes (IP.To4).
 *   - IPv4 CIDR: contains IPv4/IPv4-mapped clients in range, never IPv6 ones.
 *   - IPv6 CIDR: if its network address (host bits cleared) is IPv4-mapped,
 *     which needs a prefix >= 96, Go compares it as the IPv4 network of
 *     prefix - 96 (networkNumberAndMask calls IP.To4), so ::ffff:0:0/96
 *     contains every IPv4 client. Otherwise it contains only non-mapped IPv6
 *     clients in range (::/0 contains no IPv4 client).
 *   - plain address: 16-byte equality, so 1.2.3.4 == ::ffff:1.2.3.4 but
 *     ::1.2.3.4 (IPv4-compatible) is a different, IPv6 address.
 *   - an empty list restricts nothing: every address, even garbage, is allowed.
 */
#ifndef CK_CIDR_H
#define CK_CIDR_H

#include <stddef.h>
#include <stdint.h>

/* What an entry is. */
enum ck_entry_kind {
    CK_ENTRY_IP = 1,   /* single address ("1.2.3.4", "2001:db8::1") */
    CK_ENTRY_NET4 = 2, /* IPv4 CIDR, prefix 0..32 ("10.0.0.0/8") */
    CK_ENTRY_NET6 = 3  /* IPv6 CIDR, prefix 0..128, IPv4-mapped ones included */
};

/* One parsed entry; two entries are equal (memcmp) exactly when their
 * normalised texts are equal. */
typedef struct ck_entry {
    uint8_t addr[16]; /* host bits cleared for CIDRs; IPv4 stored as ::ffff:a.b.c.d */
    uint8_t kind;     /* enum ck_entry_kind */
    uint8_t prefix;   /* CIDR prefix length in its own family's bits; 0 for CK_ENTRY_IP */
} ck_entry;

/* A client address in Go's 16-byte form (IPv4 as ::ffff:a.b.c.d). */
typedef struct ck_addr {
    uint8_t b[16];
} ck_addr;

/* Why an entry was refused; ck_cidr_strerror() gives the text. */
enum ck_cidr_error {
    CK_CIDR_OK = 0,
    CK_CIDR_EINVALID,      /* no more specific reason */
    CK_CIDR_EEMPTY,        /* empty entry */
    CK_CIDR_ELEADING_ZERO, /* IPv4 field like "01" */
    CK_CIDR_EOCTET,        /* IPv4 field above 255 */
    CK_CIDR_EHEXGROUP,     /* IPv6 group of more than 4 hex digits */
    CK_CIDR_EPREFIX,       /* text after "/" is not decimal digits */
    CK_CIDR_EPREFIX4,      /* IPv4 prefix length above 32 */
    CK_CIDR_EPREFIX6,      /* IPv6 prefix length above 128 */
    CK_CIDR_EZONE,         /* "fe80::1%eth0" */
    CK_CIDR_EBRACKETS,     /* "[::1]" */
    CK_CIDR_EPORT,         /* "10.0.0.1:80" */
    CK_CIDR_ERANGE,        /* "10.0.0.1-10.0.0.9", "10.0.0.*" */
    CK_CIDR_EHOSTNAME,     /* "localhost", "example.com" */
    CK_CIDR_ESEPARATOR     /* an array item holding more than one entry (binding) */
};

/* Longest normalised entry text plus its NUL ("::ffff:255.255.255.255/128" is
 * 26; 8 full hex groups with "/128" are 43). */
#define CK_ENTRY_TEXT_MAX 48

/* Longest ck_cidr_quote() output plus its NUL. */
#define CK_QUOTE_MAX 80

/* ------------------------------------------------------------------ entries */

/* Parses one entry (no surrounding blanks). Returns CK_CIDR_OK and fills *out,
 * or an enum ck_cidr_error code (then *out is unspecified). */
int ck_entry_parse(const char *s, size_t len, ck_entry *out);

/* The reason for an error code, as a phrase that completes "entry 2 (...) is ":
 * "not an IP address or CIDR (ports are not allowed)". Never NULL. */
const char *ck_cidr_strerror(int code);

/* Writes the normalised text of e: IPv4 dotted decimal, IPv6 per RFC 5952,
 * a plain IPv4-mapped address as its IPv4 form, CIDRs as "network/prefix".
 * Writes at most size bytes including the NUL (size >= CK_ENTRY_TEXT_MAX is
 * always enough); returns the text length, like snprintf. */
size_t ck_entry_format(const ck_entry *e, char *buf, size_t size);

/* Removes later duplicates in place, keeping the first occurrence and the
 * order. Returns the new count, or (size_t)-1 when out of memory (then e is
 * unchanged). Holds no memory after it returns. */
size_t ck_entries_dedup(ck_entry *e, size_t n);

/* Go's answer for one entry, computed the slow literal way (the reference the
 * matcher is tested against). Returns 1 when e admits a. */
int ck_entry_contains(const ck_entry *e, const ck_addr *a);

/* ------------------------------------------------------------------ lists */

/* Entry separators in a list string: newline, comma, space, tab, CR. */
int ck_list_is_separator(unsigned char c);

/* Iterates over the entries of a list string. Start with *pos = 0; each call
 * returns 1 and sets *start and *elen to the next non-empty piece, or returns 0
 * at the end. */
int ck_list_next(const char *s, size_t len, size_t *pos, size_t *start, size_t *elen);

/* Iterates over the pieces of a *stored* allow_ips string the way the server
 * reads it (Token.GetIpLimits): every space (0x20) removed, split on '\n'
 * only, each piece trimmed of ASCII whitespace, then every comma deleted;
 * empty pieces skipped. Start with *pos = 0; each call writes the next piece
 * into buf (which must hold len bytes), sets *blen and returns 1, or returns 0
 * at the end. A piece may be an invalid entry: the server ignores those, but a
 * list with any piece restricts (all invalid: nothing is allowed). */
int ck_server_next(const char *s, size_t len, size_t *pos, char *buf, size_t *blen);

/* Writes s as a printable, double-quote-safe excerpt for messages (non-ASCII
 * and control bytes as \xNN, cut with "..." past about 60 characters); size >=
 * CK_QUOTE_MAX is always enough. Returns the text length. */
size_t ck_cidr_quote(const char *s, size_t len, char *buf, size_t size);

/* ------------------------------------------------------------------ clients */

/* Parses a client address as Go's net.ParseIP does (no CIDR, no zone).
 * Returns 1 on success, 0 when it is not an address. */
int ck_addr_parse(const char *s, size_t len, ck_addr *out);

/* Reads a binary address: 4 bytes (IPv4) or 16 bytes (IPv6, possibly
 * IPv4-mapped), as nginx's $binary_remote_addr. Returns 0 for other lengths. */
int ck_addr_from_bytes(const void *p, size_t len, ck_addr *out);

/* Writes an address like ck_entry_format writes a plain entry. */
size_t ck_addr_format(const ck_addr *a, char *buf, size_t size);

/* ------------------------------------------------------------------ matcher */

typedef struct ck_matcher ck_matcher;

/* Builds a matcher for n entries (n may be 0: no restriction). Returns a
 * malloc'd matcher, or NULL when out of memory. Holds no other memory. */
ck_matcher *ck_matcher_new(const ck_entry *entries, size_t n);

/* Frees a matcher; NULL is allowed. */
void ck_matcher_free(ck_matcher *m);

/* Number of address ranges after merging (0 for an empty list). */
size_t ck_matcher_count(const ck_matcher *m);

/* 1 when the list admits the client, else 0. With an empty list every call
 * returns 1; otherwise an unparsable address (text) or a length other than
 * 4 or 16 (bytes) returns 0. */
int ck_matcher_contains(const ck_matcher *m, const ck_addr *a);
int ck_matcher_contains_text(const ck_matcher *m, const char *s, size_t len);
int ck_matcher_contains_bytes(const ck_matcher *m, const void *p, size_t len);

#endif /* CK_CIDR_H */
