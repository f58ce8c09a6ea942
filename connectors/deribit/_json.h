/* The one JSON scanner of the Deribit whole-frame functions (`_fast.c`: book and quote frames and
 * the decode entry; `_frames.c`: ticker and trades frames), issue 17. Static functions, included
 * by both (listed in their ext-module blocks' `depends` in pyproject.toml, so a change rebuilds
 * both). What it takes is the canonical shape only; anything else is refused (the caller returns
 * None and the Python path decodes the frame):
 *
 * - the envelope exactly as Deribit and the recorder write it, byte for byte, no whitespace:
 *   `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"<name>","data":<data>}}`,
 *   nothing after (`json_envelope`); a channel's name checked by `json_channel_is`: its head,
 *   then non-empty dot-separated parts, their count within bounds;
 * - strings of printable ASCII without `"` and `\` (no escape: a string's bytes are its text);
 * - numbers by JSON's grammar, at most 64 characters, read as msgspec reads them for the field's
 *   type (`json_num_double`, `json_num_int`): a float field takes JSON integers of at most 15
 *   digits (exact; `-0` is +0.0 as in msgspec) and decimal and exponent forms, correctly rounded
 *   (exact when the digits fit 2**53 and the power of ten is an exact double: one rounding; else
 *   `PyOS_string_to_double` on the token, correctly rounded too); an int field takes integer
 *   literals of at most 18 digits (within int64).
 *
 * Every read is bounded by the end the caller gives. None of these raises: an error of
 * `PyOS_string_to_double` (it raises only for text it does not read, or no memory) is a refusal.
 * Before the scanner was shared the two files each had one; where they differed the stricter
 * rule was kept: a channel's empty part (`ticker..x`) is refused by both now (`_frames` took
 * it), and a failed `PyOS_string_to_double` is a refusal in both (`_frames` raised). */
#ifndef TRADINGD_DERIBIT_JSON_H
#define TRADINGD_DERIBIT_JSON_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef const unsigned char *Ptr;

#define TWO53 9007199254740992.0
#define MAX_NUMBER 64 /* a longer number literal is refused */

static const char PREFIX[] = "{\"jsonrpc\":\"2.0\",\"method\":\"subscription\",\"params\":{\"channel\":\"";
#define PREFIX_LEN ((Py_ssize_t)(sizeof(PREFIX) - 1))
static const char DATA[] = "\",\"data\":";
#define DATA_LEN ((Py_ssize_t)(sizeof(DATA) - 1))

/* 1: a byte a string takes (printable ASCII but `"` and `\`). Filled by `json_init`. */
static unsigned char STR_BYTE[256];

static void json_init(void) {
    for (int c = 0; c < 256; c++) STR_BYTE[c] = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
}

/* A string at `p` (its opening quote): its content in [*s, *s + *n), and the byte after its
 * closing quote returned. NULL for a string not taken (an escape, a byte outside printable
 * ASCII) or that does not end before `end`. */
static Ptr json_str(Ptr p, Ptr end, Ptr *s, Py_ssize_t *n) {
    if (p >= end || *p != '"') return NULL;
    Ptr q = ++p;
    while (q < end && STR_BYTE[*q]) q++;
    if (q >= end || *q != '"') return NULL; /* the end, an escape, or a byte not taken */
    *s = p;
    *n = q - p;
    return q + 1;
}

/* A JSON number's token, by JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
typedef struct {
    Ptr start, end;
    int neg;
    Ptr int_start;
    Py_ssize_t int_len;
    Ptr frac_start;
    Py_ssize_t frac_len; /* 0: no fraction */
    int has_exp;
    int exp_big; /* more than 5 exponent digits */
    long exp;    /* the exponent's value when not exp_big */
    uint64_t m;  /* the digits (integer and fraction) as an integer, when 19 or fewer */
} Num;

/* The token at `p` into *t: the byte after it, or NULL (not the grammar, longer than
 * MAX_NUMBER). A leading zero ends the token after it (`01`: the caller meets `1`). */
static Ptr json_num(Ptr p, Ptr end, Num *t) {
    t->start = p;
    t->neg = 0;
    t->frac_len = 0;
    t->frac_start = NULL;
    t->has_exp = 0;
    t->exp_big = 0;
    t->exp = 0;
    if (p < end && *p == '-') {
        t->neg = 1;
        p++;
    }
    t->int_start = p;
    uint64_t m = 0;
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') m = m * 10 + (uint64_t)(*p++ - '0'); /* wraps past 19 */
    } else {
        return NULL;
    }
    t->int_len = p - t->int_start;
    if (p < end && *p == '.') {
        p++;
        t->frac_start = p;
        while (p < end && *p >= '0' && *p <= '9') m = m * 10 + (uint64_t)(*p++ - '0');
        t->frac_len = p - t->frac_start;
        if (t->frac_len == 0) return NULL;
    }
    t->m = m; /* meaningful only when int_len + frac_len <= 19 (no wrap) */
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        t->has_exp = 1;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        Ptr e0 = p;
        long e = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (p - e0 < 5) e = e * 10 + (*p - '0');
            p++;
        }
        if (p == e0) return NULL;
        if (p - e0 > 5) t->exp_big = 1;
        t->exp = eneg ? -e : e;
    }
    t->end = p;
    if (t->end - t->start > MAX_NUMBER) return NULL;
    return p;
}

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The float msgspec gives for the token in a float field: 1 with *out, 0 when not taken (an
 * integer of more than 15 digits, a token `PyOS_string_to_double` fails on). Never raises. */
static int json_num_double(const Num *t, double *out) {
    if (t->frac_len == 0 && !t->has_exp) { /* an integer: msgspec converts it (-0 is 0.0) */
        if (t->int_len > 15) return 0;
        uint64_t m = t->m;
        *out = t->neg && m != 0 ? -(double)m : (double)m;
        return 1;
    }
    Py_ssize_t digits = t->int_len + t->frac_len;
    if (digits <= 19 && !t->exp_big) {
        uint64_t m = t->m;
        long e10 = t->exp - (long)t->frac_len;
        if (m == 0) {
            *out = t->neg ? -0.0 : 0.0;
            return 1;
        }
        if (m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) { /* both exact: one rounding */
            double v = (double)m;
            v = e10 < 0 ? v / POW10[-e10] : v * POW10[e10];
            *out = t->neg ? -v : v;
            return 1;
        }
    }
    char buf[MAX_NUMBER + 1];
    Py_ssize_t n = t->end - t->start;
    memcpy(buf, t->start, (size_t)n);
    buf[n] = '\0';
    char *endp = NULL;
    double v = PyOS_string_to_double(buf, &endp, NULL); /* an overflow gives +-inf, no error */
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (endp != buf + n) return 0;
    *out = v;
    return 1;
}

/* The int of an integer token of at most 18 digits (1), or 0 for any other number. */
static int json_num_int(const Num *t, long long *out) {
    if (t->frac_len != 0 || t->has_exp || t->int_len > 18) return 0;
    long long m = (long long)t->m; /* < 10**18: no wrap */
    *out = t->neg ? -m : m;
    return 1;
}

/* A canonical notification of `n` bytes at `p`: 1 with the channel's name in [*name, *name +
 * *name_n) and the data's text in [*data, *data_end) (the frame ends `}}` right after it), 0
 * otherwise. */
static int json_envelope(Ptr p, Py_ssize_t n, Ptr *name, Py_ssize_t *name_n, Ptr *data, Ptr *data_end) {
    if (n < PREFIX_LEN + DATA_LEN + 3 || memcmp(p, PREFIX, (size_t)PREFIX_LEN) != 0) return 0;
    Ptr end = p + n - 2;
    if (end[0] != '}' || end[1] != '}') return 0;
    Ptr q = json_str(p + PREFIX_LEN - 1, end, name, name_n);
    if (q == NULL) return 0;
    q--; /* the name's closing quote starts DATA */
    if (end - q < DATA_LEN || memcmp(q, DATA, (size_t)DATA_LEN) != 0) return 0;
    *data = q + DATA_LEN;
    *data_end = end;
    return 1;
}

/* The channel's name is `head` (its dot included) then non-empty dot-separated parts, the whole
 * name having `min_parts` to `max_parts` parts (the head's one included). */
static int json_channel_is(Ptr ch, Py_ssize_t n, const char *head, int min_parts, int max_parts) {
    Py_ssize_t h = (Py_ssize_t)strlen(head);
    if (n <= h || memcmp(ch, head, (size_t)h) != 0) return 0;
    int parts = 2;           /* the head and the part after its dot */
    Py_ssize_t last = h - 1; /* the last dot */
    for (Py_ssize_t k = h; k < n; k++) {
        if (ch[k] == '.') {
            if (k == last + 1) return 0; /* an empty part */
            last = k;
            parts++;
        }
    }
    return last != n - 1 && parts >= min_parts && parts <= max_parts;
}

#endif
