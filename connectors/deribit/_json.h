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
 *   type (`json_number`): a float field takes JSON integers of at most 15
 *   digits (exact; `-0` is +0.0 as in msgspec) and decimal and exponent forms, correctly rounded
 *   (one exact division when the digits fit 2**53 and the power of ten is an exact double; else
 *   `PyOS_string_to_double` on the token, correctly rounded too); an int field takes integer
 *   literals of at most 18 digits (within int64).
 *
 * Strings are read 8 bytes a word (`json_word_stops`, little-endian builds). Besides the scanner,
 * what both modules share: a hash for their direct-mapped tables (`json_hash`), the instrument
 * names' str objects reused (`json_ascii_cached`) and the decoder's own attributes read from its
 * instance dict on a class that leaves them there (`json_attr`).
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

#include "../../engine/_typecache.h" /* a class's version tag and its attributes' lookup */

typedef const unsigned char *Ptr;

#define TWO53 9007199254740992.0

#if defined(__GNUC__)
#define JSON_PREFETCH(p) __builtin_prefetch(p) /* a hint: never faults, changes nothing */
#define JSON_INLINE static inline __attribute__((always_inline)) /* a small function of a hot loop */
#else
#define JSON_PREFETCH(p) ((void)(p))
#define JSON_INLINE static inline
#endif
#define MAX_NUMBER 64 /* a longer number literal is refused */

static const char PREFIX[] = "{\"jsonrpc\":\"2.0\",\"method\":\"subscription\",\"params\":{\"channel\":\"";
#define PREFIX_LEN ((Py_ssize_t)(sizeof(PREFIX) - 1))
static const char DATA[] = "\",\"data\":";
#define DATA_LEN ((Py_ssize_t)(sizeof(DATA) - 1))

/* 1: a byte a string takes (printable ASCII but `"` and `\`). Filled by `json_init`. */
static unsigned char STR_BYTE[256];

static inline void json_init(void) {
    for (int c = 0; c < 256; c++) STR_BYTE[c] = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
}

/* The bytes at `q`, 8 of them, that a string does not take (STR_BYTE: a byte below 0x20 or
 * above 0x7e, `"` (0x22) or `\\` (0x5c)), by whole-word tests: 0 when there is none, else a mask
 * whose lowest set bit is in the first such byte (the bit 7 of it, on a little-endian machine).
 * Each test is exact about its lowest match: a borrow or a carry only runs from a byte that
 * matched to the bytes after it, so a mismatch flagged after a match does not matter
 * (tests/connectors/deribit/test_deribit_decode_caches.py compares it with STR_BYTE). */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define JSON_WORDS 1
static inline uint64_t json_word_stops(Ptr q) {
    uint64_t w;
    memcpy(&w, q, 8);
    uint64_t low = (w - ONES * 0x20) & ~w;          /* a byte < 0x20 (with ~w: bytes < 0x80 only) */
    uint64_t high = (w + ONES * (0x7f - 0x7e)) | w; /* a byte > 0x7e: 0x7f + 1, or the high bit set */
    uint64_t x = w ^ (ONES * '"'), y = w ^ (ONES * '\\');
    uint64_t quote = (x - ONES) & ~x, bslash = (y - ONES) & ~y; /* a zero byte of x, of y */
    return (low | high | quote | bslash) & HIGHS;
}
#else
#define JSON_WORDS 0
#endif

/* A string at `p` (its opening quote): its content in [*s, *s + *n), and the byte after its
 * closing quote returned. NULL for a string not taken (an escape, a byte outside printable
 * ASCII) or that does not end before `end`. */
static inline Ptr json_str(Ptr p, Ptr end, Ptr *s, Py_ssize_t *n) {
    if (p >= end || *p != '"') return NULL;
    Ptr q = ++p;
#if JSON_WORDS
    /* 8 bytes at a time to the first byte not taken (`json_word_stops`), then byte by byte */
    for (; end - q >= 8; q += 8) {
        uint64_t stops = json_word_stops(q);
        if (stops) {
            q += __builtin_ctzll(stops) >> 3;
            goto stop;
        }
    }
#endif
    while (q < end && STR_BYTE[*q]) q++;
#if JSON_WORDS
stop:
#endif
    if (q >= end || *q != '"') return NULL; /* the end, an escape, or a byte not taken */
    *s = p;
    *n = q - p;
    return q + 1;
}

#define DIGIT(c) ((unsigned)((c) - '0') < 10u)

/* A JSON number's token at `p` skipped (a value skipped: its grammar only), by JSON's grammar
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?: the byte after it, or NULL (not the grammar,
 * longer than MAX_NUMBER). A leading zero ends the token (`01`: the caller meets `1`). */
static inline Ptr json_num(Ptr p, Ptr end) {
    Ptr start = p;
    if (p < end && *p == '-') p++;
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && DIGIT(*p)) p++;
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        Ptr f = ++p;
        while (p < end && DIGIT(*p)) p++;
        if (p == f) return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        Ptr e = p;
        while (p < end && DIGIT(*p)) p++;
        if (p == e) return NULL;
    }
    if (p - start > MAX_NUMBER) return NULL;
    return p;
}

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A number in one pass (the typed fields' path): the token at `p` read as msgspec reads it for a
 * float field (`as_float`: *x) or an int one (*i). The byte after it, or NULL to refuse: not the
 * grammar (`json_num`'s), longer than MAX_NUMBER, an int field given a fraction or an exponent
 * or more than 18 digits, a float field given an integer of more than 15 digits. Decimal forms
 * of at most 15 significant digits and no exponent: one correctly rounded division of exact
 * doubles (Clinger's fast case); others: `PyOS_string_to_double` on the token (correctly
 * rounded; overflow gives +-inf; an error is a refusal). Never raises. */
static inline Ptr json_number(Ptr p, Ptr end, int as_float, double *x, long long *i) {
    Ptr start = p, q = p;
    /* No token longer than MAX_NUMBER is taken: reading stops one byte past it (a token that
     * reaches `lim` is refused below), so the loops test one bound, and `digits` and `exp10`
     * stay small. */
    Ptr lim = end - start > MAX_NUMBER ? start + MAX_NUMBER + 1 : end;
    int neg = 0, int_form = 1, digits = 0, exp_text = 0, exp10 = 0;
    unsigned long long m = 0;
    if (q < lim && *q == '-') {
        neg = 1;
        q++;
    }
    if (q >= lim || !DIGIT(*q)) return NULL;
    if (*q == '0') {
        q++; /* a leading zero ends the integer part (`01`: the caller meets `1`) */
    } else {
        for (; q < lim && DIGIT(*q); q++, digits++) {
            if (digits < 19) m = m * 10 + (unsigned long long)(*q - '0');
            else exp10++; /* past 19 digits: the text is parsed below */
        }
    }
    if (q < lim && *q == '.') {
        int_form = 0;
        q++;
        if (q >= lim || !DIGIT(*q)) return NULL;
        for (; q < lim && DIGIT(*q); q++) {
            if (m == 0 && *q == '0') {
                exp10--; /* a leading zero of the fraction: no significant digit yet */
            } else {
                if (digits < 19) {
                    m = m * 10 + (unsigned long long)(*q - '0');
                    exp10--;
                }
                digits++;
            }
        }
    }
    if (q < lim && (*q == 'e' || *q == 'E')) {
        int_form = 0;
        exp_text = 1;
        q++;
        if (q < lim && (*q == '+' || *q == '-')) q++;
        if (q >= lim || !DIGIT(*q)) return NULL;
        while (q < lim && DIGIT(*q)) q++;
    }
    if (q - start > MAX_NUMBER) return NULL;
    if (!as_float) {
        if (!int_form || digits > 18) return NULL; /* within int64 */
        *i = neg ? -(long long)m : (long long)m;
        return q;
    }
    if (int_form) {
        /* msgspec reads an integer literal as an int, then its float: exact to 2**53 */
        if (digits > 15) return NULL;
        *x = (double)(neg ? -(long long)m : (long long)m); /* `-0` is 0.0 */
        return q;
    }
    if (!exp_text && digits <= 15 && m <= (1ULL << 53) && exp10 >= -22 && exp10 <= 0) {
        double v = (double)m / POW10[-exp10];
        *x = neg ? -v : v;
        return q;
    }
    char buf[MAX_NUMBER + 1];
    memcpy(buf, start, (size_t)(q - start));
    buf[q - start] = '\0';
    char *stop = NULL;
    double v = PyOS_string_to_double(buf, &stop, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (stop != buf + (q - start)) return NULL;
    *x = v;
    return q;
}

/* A hash of the bytes [s, s + n) for the direct-mapped caches below: a word at a time (a
 * channel's name is ~30 bytes, a memo key ~90). Only a slot's choice: a hit is checked whole. */
static inline uint64_t json_hash(Ptr s, Py_ssize_t n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL, w;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    if (i < n) {
        w = 0;
        memcpy(&w, s + i, (size_t)(n - i));
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
    }
    return h ^ (h >> 32);
}

/* The longest text the direct-mapped caches keep (an instrument's name, a memo key's channel):
 * a longer one is made anew each time, so that what the tables hold stays small whatever a
 * stream sends (a real name is under 40 bytes). */
#define JSON_CACHE_MAX 64

/* The str of the printable ASCII [s, s + n), a new reference: the one made last time for the
 * same text when it is still in its slot of `cache` (`size` slots, a power of two), else a new
 * one that takes the slot (a text of at most JSON_CACHE_MAX bytes; a longer one is not kept). A backtest sees a few hundred instrument names: each str is made once,
 * and its hash computed once (dict lookups by name then hash nothing). A str is immutable and
 * equal to any other of its text: which one an event or a lookup gets does not show. */
static inline PyObject *json_ascii_cached(PyObject **cache, size_t size, Ptr s, Py_ssize_t n) {
    if (n > JSON_CACHE_MAX) { /* not kept: a table of slots holds no stream's arbitrary text */
        PyObject *u = PyUnicode_New(n, 127);
        if (u != NULL) memcpy(PyUnicode_DATA(u), s, (size_t)n);
        return u;
    }
    PyObject **slot = &cache[json_hash(s, n) & (size - 1)];
    PyObject *o = *slot;
    if (o != NULL && PyUnicode_GET_LENGTH(o) == n && memcmp(PyUnicode_DATA(o), s, (size_t)n) == 0)
        return Py_NewRef(o);
    PyObject *u = PyUnicode_New(n, 127);
    if (u == NULL) return NULL;
    memcpy(PyUnicode_DATA(u), s, (size_t)n);
    Py_XSETREF(*slot, Py_NewRef(u)); /* a str's release runs no code */
    return u;
}

/* The `cache` table's objects released (a module's m_free): a slot left empty is a miss, so the
 * tables refill as they are used. Their objects (str, bytes, int) run no code when released. */
static inline void json_cache_clear(PyObject **cache, size_t size) {
    for (size_t i = 0; i < size; i++) Py_CLEAR(cache[i]);
}

/* `getattr(obj, name)` for the decoder's own attributes (`_fast`, `_books`, `stats`, `_states`):
 * read from its instance dict when its class leaves them there, as the attribute protocol would
 * (PyObject_GenericGetAttr, and no class attribute of any of `names` on its MRO: no descriptor to
 * call), checked once per class and kept while the class is unchanged (its version tag). Else,
 * and for a name not in the dict, PyObject_GetAttr itself (the same value, or the same error).
 * `PlainClass` remembers the class learnt last. A new reference, or NULL with an exception. */
typedef struct {
    PyTypeObject *type; /* strong reference */
    unsigned int version; /* its version tag when it was learnt plain; 0: not plain */
} PlainClass;

static inline int json_plain_class(PlainClass *pc, PyTypeObject *type, PyObject *const *names, int n) {
    if (type != pc->type) {
        Py_INCREF(type);
        Py_XSETREF(pc->type, type);
        pc->version = 0;
        if (type->tp_getattro == PyObject_GenericGetAttr && type->tp_dictoffset != 0) {
            int plain = 1;
            for (int i = 0; i < n && plain; i++) plain = tc_lookup(type, names[i]) == NULL;
            if (plain) pc->version = tc_version(type); /* after the lookups, which give it a tag */
        }
    }
    if (pc->version != 0 && tc_version(type) == pc->version) return 1;
    if (pc->version != 0) { /* the class changed since: learn it again */
        Py_CLEAR(pc->type);
        return json_plain_class(pc, type, names, n);
    }
    return 0;
}

static inline PyObject *json_attr(PlainClass *pc, PyObject *obj, PyObject *name, PyObject *const *names, int n) {
    if (json_plain_class(pc, Py_TYPE(obj), names, n)) {
        PyObject *dict = PyObject_GenericGetDict(obj, NULL);
        if (dict == NULL) return NULL; /* (a class with a dict offset has one: no memory) */
        PyObject *v = PyDict_CheckExact(dict) ? PyDict_GetItemWithError(dict, name) : NULL; /* borrowed */
        if (v != NULL) {
            Py_INCREF(v);
            Py_DECREF(dict);
            return v;
        }
        Py_DECREF(dict);
        if (PyErr_Occurred()) return NULL;
    }
    return PyObject_GetAttr(obj, name);
}

/* A canonical notification of `n` bytes at `p`: 1 with the channel's name in [*name, *name +
 * *name_n) and the data's text in [*data, *data_end) (the frame ends `}}` right after it), 0
 * otherwise. */
static inline int json_envelope(Ptr p, Py_ssize_t n, Ptr *name, Py_ssize_t *name_n, Ptr *data, Ptr *data_end) {
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
static inline int json_channel_is(Ptr ch, Py_ssize_t n, const char *head, int min_parts, int max_parts) {
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
