/*
 * ck_utf8.h - UTF-8 well-formedness checks shared by the core's files.
 */
#ifndef CK_UTF8_H
#define CK_UTF8_H

#include <stddef.h>

/*
 * Length (1-4) of the well-formed UTF-8 sequence that starts s (len bytes
 * available), or 0 when s does not start one: stray continuation bytes,
 * overlong forms, surrogates and code points above U+10FFFF are all refused.
 */
size_t ck_utf8_seqlen(const unsigned char *s, size_t len);

/*
 * Offset of the first byte of s that is not part of well-formed UTF-8, or
 * len when the whole string is valid.
 */
size_t ck_utf8_invalid_at(const char *s, size_t len);

#endif /* CK_UTF8_H */
