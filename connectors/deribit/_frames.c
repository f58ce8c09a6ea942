/* Whole-frame decoding of Deribit `ticker.*` and `trades.*` notifications, in C (issue 17).
 *
 * `ticker_frame(decoder, frame, ts_local)` and `trades_frame(decoder, frame, ts_local)` are the
 * whole-frame hook of codec.py (`DeribitDecoder.decode`): they read the raw frame bytes
 * directly (no msgspec) and build the events `DeribitDecoder._ticker_events` /
 * `_trades_events` build from it, or return None when the frame is not exactly of the canonical
 * shape they take, having changed nothing; `decode` then goes on with the msgspec route and the
 * reference, which say what the frame is. Neither changes any state: the ticker cases that do
 * (an instrument's first `state`, a state change, the funding branches) are returned None and
 * done by the Python code. tests/connectors/deribit/test_deribit_frames_compiled.py compares
 * both functions with the reference (a decoder built with `compiled=False`) on every ticker and
 * trades frame of the real captures and of the bundled sample, and on hostile mutations.
 *
 * What is taken (anything else is None):
 * - the envelope exactly as Deribit and the recorder write it, byte for byte, no whitespace:
 *   `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"<name>","data":<data>}}`,
 *   the name printable ASCII without `\`, `ticker.X.Y` (`trades.X.Y`, `trades.X.Y.Z`: the
 *   channels codec routes to the handler), nothing after;
 * - the data's members in any order, each known member at most once; an unknown member's value
 *   is skipped (msgspec ignores it) only if it is strict JSON of printable-ASCII strings without
 *   escapes, numbers of JSON's grammar (at most 64 characters), literals, arrays and objects
 *   nested at most 32 deep: stricter than msgspec's skip, never looser;
 * - strings without escapes, printable ASCII; keys likewise (an escaped key could spell a field);
 * - numbers as msgspec reads them for each field's type (codec.py `Price`, `Amount`, `Millis`,
 *   `float`): a float field takes JSON's integers (at most 15 digits: exact; `-0` is +0.0 as in
 *   msgspec) and floats (correctly rounded: exact when the digits fit 2**53 and the power of ten
 *   is exact, else `PyOS_string_to_double` on the token, which is correctly rounded too), then
 *   the field's bounds (a value outside them: None, the reference says why); an int field takes
 *   JSON integers of at most 18 digits, within its bounds.
 *
 * The envelope, strings and numbers are read by the scanner shared with _fast.c (`_json.h`).
 * Every C-API result is checked; the frame is read through bounds-checked pointers only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_json.h" /* the JSON scanner shared with _fast.c */

/* What codec.py hands over once (`setup`). */
static PyObject *ticker_type = NULL; /* the Ticker builder (positional) */
static PyObject *greeks_type = NULL; /* the Greeks builder (positional) */
static PyObject *trade_type = NULL;  /* the Trade builder (positional) */
static PyObject *venue = NULL;       /* "deribit" */
static PyObject *side_buy = NULL, *side_sell = NULL;
static PyObject *ivs = NULL;      /* codec._IVS: the IV memo, read for IVs of more than 2 decimals */
static PyObject *iv_learn = NULL; /* codec._iv_learn */
static PyObject *s_states = NULL; /* "_states" */
static PlainClass decoder_class = {NULL, 0}; /* the decoder's `_states` read (`_json.h` `json_attr`) */

/* codec's globals, and the objects its Python path reads there as `setup` found them: a test
 * that patches one (to inject a fault, tests/backtest/test_cache_equality.py) sends the frames
 * it concerns to the Python path, which then meets the patch. */
static PyObject *namespace = NULL;
typedef struct {
    const char *name;
    PyObject *key;   /* interned */
    PyObject *value; /* as found by `setup` */
} Pin;
static Pin ticker_pins[] = {
    {"_top", NULL, NULL}, {"_ticker", NULL, NULL}, {"_greeks", NULL, NULL}, {"_iv_learn", NULL, NULL}, {"_IVS", NULL, NULL}};
static Pin trade_pins[] = {{"_trade", NULL, NULL}, {"_SIDES", NULL, NULL}};
#define N_PINS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* 1 when codec's globals still hold the objects `setup` found, 0 when one was replaced, -1 on
 * an error raised. */
static int pins_hold(const Pin *pins, int n) {
    for (int i = 0; i < n; i++) {
        PyObject *v = PyDict_GetItemWithError(namespace, pins[i].key); /* borrowed; str keys */
        if (v != pins[i].value) return v == NULL && PyErr_Occurred() ? -1 : 0;
    }
    return 1;
}

static int pin_all(Pin *pins, int n) {
    for (int i = 0; i < n; i++) {
        if (pins[i].key == NULL && (pins[i].key = PyUnicode_InternFromString(pins[i].name)) == NULL) return -1;
        PyObject *v = PyDict_GetItemWithError(namespace, pins[i].key);
        if (v == NULL) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "setup: the namespace has no %s", pins[i].name);
            return -1;
        }
        Py_XSETREF(pins[i].value, Py_NewRef(v));
    }
    return 0;
}

#define MAX_DEPTH 32
#define MS 1000000LL
#define MAX_MILLIS (INT64_MAX / MS) /* codec.Millis: le=(2**63 - 1) // 1_000_000 */



/* -- the instrument names' str objects, reused (a backtest sees a few hundred names) -------- */

#define NAME_CACHE 1024
static PyObject *names[NAME_CACHE];

/* A new reference to the str of the printable ASCII `s[:n]`. */
static PyObject *ascii_str(Ptr s, Py_ssize_t n) {
    PyObject *u = PyUnicode_New(n, 127);
    if (u == NULL) return NULL;
    memcpy(PyUnicode_DATA(u), s, (size_t)n);
    return u;
}

static PyObject *name_str(Ptr s, Py_ssize_t n) { return json_ascii_cached(names, NAME_CACHE, s, n); }

/* -- scanning --------------------------------------------------------------------------- */

static Ptr skip_value(Ptr p, Ptr end, int depth);

/* The members of an object at `p` (after its `{`), skipped. */
static Ptr skip_object(Ptr p, Ptr end, int depth) {
    if (p < end && *p == '}') return p + 1;
    for (;;) {
        Ptr s;
        Py_ssize_t n;
        p = json_str(p, end, &s, &n);
        if (p == NULL || p >= end || *p != ':') return NULL;
        p = skip_value(p + 1, end, depth);
        if (p == NULL || p >= end) return NULL;
        if (*p == '}') return p + 1;
        if (*p != ',') return NULL;
        p++;
    }
}

/* A value at `p` skipped (a member msgspec ignores), strictly: the byte after it, or NULL. */
static Ptr skip_value(Ptr p, Ptr end, int depth) {
    if (p >= end) return NULL;
    Ptr s;
    Py_ssize_t n;
    switch (*p) {
    case '"':
        return json_str(p, end, &s, &n);
    case '{':
        if (depth >= MAX_DEPTH) return NULL;
        return skip_object(p + 1, end, depth + 1);
    case '[':
        if (depth >= MAX_DEPTH) return NULL;
        p++;
        if (p < end && *p == ']') return p + 1;
        for (;;) {
            p = skip_value(p, end, depth + 1);
            if (p == NULL || p >= end) return NULL;
            if (*p == ']') return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    case 't':
        return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return json_num(p, end);
    }
}

/* `skip_value`, its scalars (a number, a string: most of what is skipped) read here, inlined in
 * the members' loops; an object, an array or a literal by `skip_value`. The same answer. */
JSON_INLINE Ptr skip_member(Ptr p, Ptr end, int depth) {
    if (p < end) {
        if (*p == '"') {
            Ptr s;
            Py_ssize_t n;
            return json_str(p, end, &s, &n);
        }
        if (*p == '-' || DIGIT(*p)) return json_num(p, end);
    }
    return skip_value(p, end, depth);
}

static int is_null(Ptr p, Ptr end) { return end - p >= 4 && memcmp(p, "null", 4) == 0; }

/* -- typed fields ------------------------------------------------------------------------ */

enum { K_PRICE, K_AMOUNT, K_FLOAT };

/* A float field's value (null allowed when `nullable`): *set is 1 with *v for a number, 0 for
 * null. Returns the byte after the value; NULL when it is not taken (`*err` set on an error). */
static Ptr read_float(Ptr p, Ptr end, int kind, int nullable, double *v, int *set, int *err) {
    if (p < end && *p == 'n') {
        if (!nullable || !is_null(p, end)) return NULL;
        *set = 0;
        return p + 4;
    }
    Ptr q = json_number(p, end, 1, v, NULL);
    if (q == NULL) return NULL;
    double x = *v;
    if (kind == K_PRICE ? !(x > -TWO53 && x < TWO53)
                        : kind == K_AMOUNT ? !(x >= 0 && x < TWO53) : !isfinite(x))
        return NULL;
    *set = 1;
    return q;
}

/* A `Millis` field: an integer 0 <= ms <= MAX_MILLIS. */
static Ptr read_millis(Ptr p, Ptr end, long long *v) {
    Ptr q = json_number(p, end, 0, NULL, v);
    if (q == NULL || *v < 0 || *v > MAX_MILLIS) return NULL;
    return q;
}

/* -- the envelope -------------------------------------------------------------------------- */

/* The frame's bytes; 0 for a frame of another type (or a str not all ASCII). */
static int frame_bytes(PyObject *frame, Ptr *p, Py_ssize_t *n) {
    if (PyBytes_CheckExact(frame)) {
        *p = (Ptr)PyBytes_AS_STRING(frame);
        *n = PyBytes_GET_SIZE(frame);
        return 1;
    }
    if (PyUnicode_CheckExact(frame) && PyUnicode_IS_COMPACT_ASCII(frame)) {
        *p = (Ptr)PyUnicode_DATA(frame);
        *n = PyUnicode_GET_LENGTH(frame);
        return 1;
    }
    return 0;
}

/* The start of the data of a canonical notification (`json_envelope`) of a channel that
 * `json_channel_is(head, min_parts, max_parts)` (the channels `DeribitDecoder._route` gives to
 * the handler), and in *end the byte after the data (the frame ends `}}` right after it); NULL
 * otherwise. */
static Ptr envelope(PyObject *frame, const char *head, int min_parts, int max_parts, Ptr *end) {
    Ptr p, name, data;
    Py_ssize_t n, name_n;
    if (!frame_bytes(frame, &p, &n) || !json_envelope(p, n, &name, &name_n, &data, end)) return NULL;
    return json_channel_is(name, name_n, head, min_parts, max_parts) ? data : NULL;
}

/* A canonical `head` notification's data, just past its opening `open` (`*p`, `*end`), when
 * codec's pinned globals hold: 1; 0 when the frame is another's or a global was patched (the
 * caller steps aside, None); -1 on an error raised. */
static int data_start(PyObject *frame, const char *head, int min_parts, int max_parts, char open, const Pin *pins,
                      int n_pins, Ptr *p, Ptr *end) {
    Ptr q = envelope(frame, head, min_parts, max_parts, end);
    if (q == NULL || q >= *end || *q != open) return 0;
    int held = pins_hold(pins, n_pins);
    if (held <= 0) return held;
    *p = q + 1;
    return 1;
}

#define KEY(lit) (n == (Py_ssize_t)(sizeof(lit) - 1) && memcmp(s, lit, sizeof(lit) - 1) == 0)

/* -- tickers --------------------------------------------------------------------------- */

enum {
    F_BID,
    F_BID_SIZE,
    F_ASK,
    F_ASK_SIZE,
    F_LAST,
    F_MARK,
    F_INDEX,
    F_UNDERLYING,
    F_OI,
    F_MARK_IV,
    F_BID_IV,
    F_ASK_IV,
    F_FUNDING,
    N_FLOATS,
    /* the other members, for the duplicate check */
    F_NAME = N_FLOATS,
    F_TS,
    F_STATE,
    F_GREEKS,
    F_FUNDING_TS,
    F_FUNDING_ACCRUES,
};

/* The Greeks object at `p` (`{`): delta, gamma, vega, theta required prices, rho a price or
 * null; unknown members skipped. The byte after it, or NULL. */
static Ptr read_greeks(Ptr p, Ptr end, double g[5], int *rho_set, int *err) {
    unsigned seen = 0;
    if (p >= end || *p != '{') return NULL;
    p++;
    if (p < end && *p == '}') return NULL; /* the four are required */
    for (;;) {
        Ptr s;
        Py_ssize_t n;
        p = json_str(p, end, &s, &n);
        if (p == NULL || p >= end || *p != ':') return NULL;
        p++;
        int i = KEY("delta") ? 0 : KEY("gamma") ? 1 : KEY("vega") ? 2 : KEY("theta") ? 3 : KEY("rho") ? 4 : -1;
        if (i < 0) {
            p = skip_member(p, end, 2);
        } else {
            if (seen & (1u << i)) return NULL;
            seen |= 1u << i;
            int set = 0;
            p = read_float(p, end, K_PRICE, i == 4, &g[i], &set, err);
            if (i == 4) *rho_set = set;
        }
        if (p == NULL || p >= end) return NULL;
        if (*p == '}') break;
        if (*p != ',') return NULL;
        p++;
    }
    if ((seen & 15u) != 15u) return NULL;
    return p + 1;
}

/* `_iv(x)` (codec.py) as a new reference: `round(x * 100)` over 10,000 when x * 100 is within
 * 1e-6 of a whole number (computed here, the same operations: Python's round is half to even,
 * C's half away from zero, but a value at a half is not within 1e-6 of either; the int's true
 * division is exact-then-rounded as a double's, and 0 divides to +0.0); else the memo `_IVS`,
 * else `_iv_learn`. */
static PyObject *iv_of(double x) {
    double h = x * 100.0;
    double r = round(h); /* half away from zero; at a half neither way is within 1e-6 */
    if (fabs(h - r) < 1e-6) return PyFloat_FromDouble(r == 0.0 ? 0.0 : r / 10000.0);
    PyObject *key = PyFloat_FromDouble(x);
    if (key == NULL) return NULL;
    PyObject *v = PyDict_GetItemWithError(ivs, key); /* borrowed; a float key runs no code */
    if (v != NULL) {
        Py_DECREF(key);
        return Py_NewRef(v);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    v = PyObject_CallOneArg(iv_learn, key);
    Py_DECREF(key);
    return v;
}

static PyObject *float_or_none(int set, double v) {
    return set ? PyFloat_FromDouble(v) : Py_NewRef(Py_None);
}

static int check_setup(void) {
    if (ticker_type == NULL || namespace == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_frames.setup was not called");
        return -1;
    }
    return 0;
}

/* A ticker's members: the index of its field, and the kind of number it is (K_PRICE unless said). */
static const struct {
    const char *name;
    Py_ssize_t n;
    int k, kind;
} TICKER_MEMBERS[] = {
    {"state", 5, F_STATE, K_PRICE},
    {"bid_iv", 6, F_BID_IV, K_AMOUNT},
    {"ask_iv", 6, F_ASK_IV, K_AMOUNT},
    {"greeks", 6, F_GREEKS, K_PRICE},
    {"mark_iv", 7, F_MARK_IV, K_AMOUNT},
    {"timestamp", 9, F_TS, K_PRICE},
    {"mark_price", 10, F_MARK, K_PRICE},
    {"last_price", 10, F_LAST, K_PRICE},
    {"index_price", 11, F_INDEX, K_AMOUNT},
    {"open_interest", 13, F_OI, K_AMOUNT},
    {"best_bid_price", 14, F_BID, K_PRICE},
    {"best_ask_price", 14, F_ASK, K_PRICE},
    {"best_bid_amount", 15, F_BID_SIZE, K_AMOUNT},
    {"best_ask_amount", 15, F_ASK_SIZE, K_AMOUNT},
    {"instrument_name", 15, F_NAME, K_PRICE},
    {"current_funding", 15, F_FUNDING, K_FLOAT},
    {"funding_accrues", 15, F_FUNDING_ACCRUES, K_PRICE},
    {"underlying_price", 16, F_UNDERLYING, K_AMOUNT},
    {"funding_timestamp", 17, F_FUNDING_TS, K_PRICE},
};

/* `s[:n]` is the member name `lit` (a literal): one compare of a known size (inlined). */
#define NAME_IS(lit) (n == (Py_ssize_t)(sizeof(lit) - 1) && memcmp(s, lit, sizeof(lit) - 1) == 0)

/* The field of the member named `s[:n]` (its number kind in `*kind`), or -1 for another: the
 * entry of TICKER_MEMBERS of that name, found by its length and one byte (`ticker_member_scan`
 * is the same answer by a scan of the table; tests/connectors/deribit/test_deribit_decode_caches.py
 * compares the two on every name of the table and near misses of them). */
JSON_INLINE int ticker_member_index(Ptr s, Py_ssize_t n) {
    switch (n) {
    case 5:
        return NAME_IS("state") ? 0 : -1;
    case 6:
        if (s[0] == 'b') return NAME_IS("bid_iv") ? 1 : -1;
        if (s[0] == 'a') return NAME_IS("ask_iv") ? 2 : -1;
        return NAME_IS("greeks") ? 3 : -1;
    case 7:
        return NAME_IS("mark_iv") ? 4 : -1;
    case 9:
        return NAME_IS("timestamp") ? 5 : -1;
    case 10:
        if (s[0] == 'm') return NAME_IS("mark_price") ? 6 : -1;
        return NAME_IS("last_price") ? 7 : -1;
    case 11:
        return NAME_IS("index_price") ? 8 : -1;
    case 13:
        return NAME_IS("open_interest") ? 9 : -1;
    case 14:
        if (s[5] == 'b') return NAME_IS("best_bid_price") ? 10 : -1;
        return NAME_IS("best_ask_price") ? 11 : -1;
    case 15:
        switch (s[0]) {
        case 'b':
            if (s[5] == 'b') return NAME_IS("best_bid_amount") ? 12 : -1;
            return NAME_IS("best_ask_amount") ? 13 : -1;
        case 'i':
            return NAME_IS("instrument_name") ? 14 : -1;
        case 'c':
            return NAME_IS("current_funding") ? 15 : -1;
        case 'f':
            return NAME_IS("funding_accrues") ? 16 : -1;
        }
        return -1;
    case 16:
        return NAME_IS("underlying_price") ? 17 : -1;
    case 17:
        return NAME_IS("funding_timestamp") ? 18 : -1;
    }
    return -1;
}
#define N_TICKER_MEMBERS ((int)(sizeof(TICKER_MEMBERS) / sizeof(TICKER_MEMBERS[0])))

/* The index of the member named `s[:n]` by a scan of TICKER_MEMBERS (the reference of
 * `ticker_member_index`), or -1. */
static int ticker_member_scan(Ptr s, Py_ssize_t n) {
    for (int i = 0; i < N_TICKER_MEMBERS; i++)
        if (TICKER_MEMBERS[i].n == n && memcmp(s, TICKER_MEMBERS[i].name, (size_t)n) == 0) return i;
    return -1;
}

static int ticker_member(Ptr s, Py_ssize_t n, int *kind) {
    int i = ticker_member_index(s, n);
    if (i < 0) return -1;
    *kind = TICKER_MEMBERS[i].kind;
    return TICKER_MEMBERS[i].k;
}

/* `string_end(text)` -> the length of the string that starts `text` (its opening quote
 * included) as `json_str` reads it, or -1 when it takes none: the test's hook. */
static PyObject *string_end(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "string_end(text: bytes)");
        return NULL;
    }
    Ptr p = (Ptr)PyBytes_AS_STRING(arg), s;
    Py_ssize_t n;
    Ptr q = json_str(p, p + PyBytes_GET_SIZE(arg), &s, &n);
    return PyLong_FromSsize_t(q == NULL ? -1 : q - p);
}

/* `member_index(name)` -> (index by the switch, index by the scan): the test's hook. */
static PyObject *member_index(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "member_index(name: bytes)");
        return NULL;
    }
    Ptr s = (Ptr)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    return Py_BuildValue("(ii)", ticker_member_index(s, n), ticker_member_scan(s, n));
}

static PyObject *ticker_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "ticker_frame(decoder, frame, ts_local)");
        return NULL;
    }
    if (check_setup() < 0) return NULL;
    PyObject *decoder = args[0], *ts_local = args[2];
    Ptr p, end;
    int opened = data_start(args[1], "ticker.", 3, 3, '{', ticker_pins, N_PINS(ticker_pins), &p, &end);
    if (opened < 0) return NULL;
    if (!opened) Py_RETURN_NONE;

    double f[N_FLOATS];
    int set[N_FLOATS] = {0};
    double g[5] = {0};
    int rho_set = 0, has_greeks = 0, last_undefined = 0, funding_accrues = 0, err = 0;
    Ptr name = NULL, state = NULL;
    Py_ssize_t name_len = 0, state_len = 0;
    long long ms = 0;
    uint32_t seen = 0;
    if (p < end && *p == '}') Py_RETURN_NONE; /* the name and timestamp are required */
    for (;;) {
        Ptr s;
        Py_ssize_t n;
        p = json_str(p, end, &s, &n);
        if (p == NULL || p >= end || *p != ':') Py_RETURN_NONE;
        p++;
        int kind = K_PRICE;
        int k = ticker_member(s, n, &kind);
        if (k < 0) {
            p = skip_member(p, end, 1);
        } else {
            if (seen & (1u << k)) Py_RETURN_NONE; /* a member twice */
            seen |= 1u << k;
            if (k < N_FLOATS) {
                if (k == F_LAST && p < end && *p == '"') {
                    Ptr ls;
                    Py_ssize_t ln;
                    p = json_str(p, end, &ls, &ln);
                    if (p == NULL || ln != 9 || memcmp(ls, "undefined", 9) != 0) Py_RETURN_NONE;
                    last_undefined = 1;
                } else {
                    p = read_float(p, end, kind, 1, &f[k], &set[k], &err);
                    if (err) return NULL;
                }
            } else if (k == F_NAME) {
                p = json_str(p, end, &name, &name_len);
            } else if (k == F_TS) {
                p = read_millis(p, end, &ms);
            } else if (k == F_STATE) {
                if (is_null(p, end)) {
                    p += 4;
                } else {
                    p = json_str(p, end, &state, &state_len);
                }
            } else if (k == F_GREEKS) {
                if (is_null(p, end)) {
                    p += 4;
                } else {
                    has_greeks = 1;
                    p = read_greeks(p, end, g, &rho_set, &err);
                    if (err) return NULL;
                }
            } else if (k == F_FUNDING_TS) {
                if (!is_null(p, end)) Py_RETURN_NONE; /* replayed funding: the Python path */
                p += 4;
            } else { /* F_FUNDING_ACCRUES: a bool */
                if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
                    funding_accrues = 1;
                    p += 4;
                } else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
                    p += 5;
                } else {
                    Py_RETURN_NONE;
                }
            }
        }
        if (p == NULL || p >= end) Py_RETURN_NONE;
        if (*p == '}') break;
        if (*p != ',') Py_RETURN_NONE;
        p++;
    }
    if (p + 1 != end) Py_RETURN_NONE; /* the data ends where the envelope does */
    if (!(seen & (1u << F_NAME)) || !(seen & (1u << F_TS))) Py_RETURN_NONE;
    if (funding_accrues && set[F_FUNDING]) Py_RETURN_NONE; /* accrued funding: the Python path */

    /* `_top`: a side with a zero amount is no quote; a bid above the ask raises (Python path) */
    if (set[F_BID_SIZE] && f[F_BID_SIZE] == 0.0) set[F_BID] = set[F_BID_SIZE] = 0;
    if (set[F_ASK_SIZE] && f[F_ASK_SIZE] == 0.0) set[F_ASK] = set[F_ASK_SIZE] = 0;
    if (set[F_BID] && set[F_ASK] && f[F_BID] > f[F_ASK]) Py_RETURN_NONE;
    if (last_undefined) set[F_LAST] = 0;

    /* The instrument's state: the same as the last seen one (or none), else the Python path. */
    PyObject *inst = name_str(name, name_len);
    if (inst == NULL) return NULL;
    if (state != NULL) {
        PyObject *states = json_attr(&decoder_class, decoder, s_states, &s_states, 1);
        if (states == NULL) {
            Py_DECREF(inst);
            return NULL;
        }
        if (!PyDict_CheckExact(states)) {
            Py_DECREF(states);
            Py_DECREF(inst);
            Py_RETURN_NONE;
        }
        PyObject *previous = PyDict_GetItemWithError(states, inst); /* borrowed; exact str key */
        int same = previous != NULL && PyUnicode_CheckExact(previous) && PyUnicode_IS_COMPACT_ASCII(previous) &&
                   PyUnicode_GET_LENGTH(previous) == state_len &&
                   memcmp(PyUnicode_DATA(previous), state, (size_t)state_len) == 0;
        Py_DECREF(states);
        if (!same) {
            Py_DECREF(inst);
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
    }

    PyObject *a[17] = {NULL};
    PyObject *greeks = NULL, *result = NULL;
    a[0] = Py_NewRef(venue);
    a[1] = inst;
    a[2] = PyLong_FromLongLong(ms * MS);
    a[3] = Py_NewRef(ts_local);
    for (int i = F_BID; i <= F_OI; i++) {
        a[4 + i] = float_or_none(set[i], f[i]);
        if (a[4 + i] == NULL) goto done;
    }
    a[13] = set[F_MARK_IV] ? iv_of(f[F_MARK_IV]) : Py_NewRef(Py_None);
    if (a[13] == NULL) goto done;
    a[14] = set[F_BID_IV] ? iv_of(f[F_BID_IV]) : Py_NewRef(Py_None);
    if (a[14] == NULL) goto done;
    a[15] = set[F_ASK_IV] ? iv_of(f[F_ASK_IV]) : Py_NewRef(Py_None);
    if (a[15] == NULL) goto done;
    if (a[2] == NULL) goto done;
    if (has_greeks) {
        PyObject *ga[5] = {NULL};
        for (int i = 0; i < 5; i++) {
            ga[i] = i == 4 ? float_or_none(rho_set, g[4]) : PyFloat_FromDouble(g[i]);
            if (ga[i] == NULL) break;
        }
        if (ga[4] != NULL) greeks = PyObject_Vectorcall(greeks_type, ga, 5, NULL);
        for (int i = 0; i < 5; i++) Py_XDECREF(ga[i]);
        if (greeks == NULL) goto done;
        a[16] = greeks;
    } else {
        a[16] = Py_NewRef(Py_None);
    }
    PyObject *ticker = PyObject_Vectorcall(ticker_type, a, 17, NULL);
    if (ticker == NULL) goto done;
    result = PyList_New(1);
    if (result == NULL) {
        Py_DECREF(ticker);
        goto done;
    }
    PyList_SET_ITEM(result, 0, ticker);
done:
    for (int i = 0; i < 17; i++) Py_XDECREF(a[i]);
    return result;
}

/* -- trades ---------------------------------------------------------------------------- */

enum { T_NAME, T_TS, T_PRICE, T_AMOUNT, T_DIRECTION, T_ID, N_TRADE };

/* One trade object at `p` (`{`), its Trade appended to `out`. The byte after it; NULL when not
 * taken (`*err` set on an error raised). */
static Ptr read_trade(Ptr p, Ptr end, PyObject *ts_local, PyObject *out, int *err) {
    if (p >= end || *p != '{') return NULL;
    p++;
    if (p < end && *p == '}') return NULL;
    unsigned seen = 0;
    Ptr name = NULL, id = NULL;
    Py_ssize_t name_len = 0, id_len = 0;
    long long ms = 0, id_int = 0;
    int id_is_int = 0, price_set = 0, amount_set = 0;
    double price = 0, amount = 0;
    PyObject *side = NULL;
    for (;;) {
        Ptr s;
        Py_ssize_t n;
        p = json_str(p, end, &s, &n);
        if (p == NULL || p >= end || *p != ':') return NULL;
        p++;
        int k = KEY("timestamp") ? T_TS
                : KEY("price") ? T_PRICE
                : KEY("amount") ? T_AMOUNT
                : KEY("direction") ? T_DIRECTION
                : KEY("instrument_name") ? T_NAME
                : KEY("trade_id") ? T_ID
                : -1;
        if (k < 0) {
            p = skip_member(p, end, 3);
        } else {
            if (seen & (1u << k)) return NULL;
            seen |= 1u << k;
            if (k == T_NAME) {
                p = json_str(p, end, &name, &name_len);
            } else if (k == T_TS) {
                p = read_millis(p, end, &ms);
            } else if (k == T_PRICE) {
                p = read_float(p, end, K_PRICE, 0, &price, &price_set, err);
            } else if (k == T_AMOUNT) {
                p = read_float(p, end, K_AMOUNT, 0, &amount, &amount_set, err);
            } else if (k == T_DIRECTION) {
                Ptr ds;
                Py_ssize_t dn;
                p = json_str(p, end, &ds, &dn);
                if (p == NULL) return NULL;
                if (dn == 3 && memcmp(ds, "buy", 3) == 0) side = side_buy;
                else if (dn == 4 && memcmp(ds, "sell", 4) == 0) side = side_sell;
                else return NULL;
            } else { /* T_ID: a str, or an int (its str) */
                if (p < end && *p == '"') {
                    p = json_str(p, end, &id, &id_len);
                } else {
                    p = json_number(p, end, 0, NULL, &id_int);
                    if (p == NULL) return NULL;
                    id_is_int = 1;
                }
            }
        }
        if (p == NULL || p >= end) return NULL;
        if (*p == '}') break;
        if (*p != ',') return NULL;
        p++;
    }
    if (seen != (1u << N_TRADE) - 1) return NULL;
    PyObject *a[8] = {NULL};
    PyObject *trade = NULL;
    a[0] = Py_NewRef(venue);
    a[1] = name_str(name, name_len);
    a[2] = PyLong_FromLongLong(ms * MS);
    a[3] = Py_NewRef(ts_local);
    a[4] = PyFloat_FromDouble(price);
    a[5] = PyFloat_FromDouble(amount);
    a[6] = Py_NewRef(side);
    a[7] = id_is_int ? PyUnicode_FromFormat("%lld", id_int) : ascii_str(id, id_len);
    int ok = 1;
    for (int i = 0; i < 8; i++) ok &= a[i] != NULL;
    if (ok) trade = PyObject_Vectorcall(trade_type, a, 8, NULL);
    for (int i = 0; i < 8; i++) Py_XDECREF(a[i]);
    if (trade == NULL || PyList_Append(out, trade) < 0) {
        Py_XDECREF(trade);
        *err = 1;
        return NULL;
    }
    Py_DECREF(trade);
    return p + 1;
}

static PyObject *trades_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "trades_frame(decoder, frame, ts_local)");
        return NULL;
    }
    if (check_setup() < 0) return NULL;
    Ptr p, end;
    int opened = data_start(args[1], "trades.", 3, 4, '[', trade_pins, N_PINS(trade_pins), &p, &end);
    if (opened < 0) return NULL;
    if (!opened) Py_RETURN_NONE;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    int err = 0, closed = 0;
    if (p < end && *p == ']') {
        p++;
        closed = 1;
    } else {
        for (;;) {
            p = read_trade(p, end, args[2], out, &err);
            if (p == NULL || p >= end) break;
            if (*p == ']') {
                p++;
                closed = 1;
                break;
            }
            if (*p != ',') {
                p = NULL;
                break;
            }
            p++;
        }
    }
    if (err) {
        Py_DECREF(out);
        return NULL;
    }
    if (!closed || p != end) { /* not taken: the events built are dropped, nothing changed */
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

/* -- setup ----------------------------------------------------------------------------- */

static PyObject *setup(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "setup(namespace, ticker, greeks, trade, venue, side_buy, side_sell, ivs, iv_learn)");
        return NULL;
    }
    if (!PyDict_CheckExact(args[0]) || !PyUnicode_CheckExact(args[4]) || !PyDict_CheckExact(args[7])) {
        PyErr_SetString(PyExc_TypeError, "setup: namespace and ivs must be dicts, venue a str");
        return NULL;
    }
    Py_XSETREF(namespace, Py_NewRef(args[0]));
    if (pin_all(ticker_pins, N_PINS(ticker_pins)) < 0 || pin_all(trade_pins, N_PINS(trade_pins)) < 0) {
        Py_CLEAR(namespace);
        return NULL;
    }
    args++; /* the builders and objects, as before */
    Py_XSETREF(ticker_type, Py_NewRef(args[0]));
    Py_XSETREF(greeks_type, Py_NewRef(args[1]));
    Py_XSETREF(trade_type, Py_NewRef(args[2]));
    Py_XSETREF(venue, Py_NewRef(args[3]));
    Py_XSETREF(side_buy, Py_NewRef(args[4]));
    Py_XSETREF(side_sell, Py_NewRef(args[5]));
    Py_XSETREF(ivs, Py_NewRef(args[6]));
    Py_XSETREF(iv_learn, Py_NewRef(args[7]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", (PyCFunction)(void (*)(void))setup, METH_FASTCALL,
     "setup(namespace, ticker, greeks, trade, venue, side_buy, side_sell, ivs, iv_learn): codec's globals, builders and objects."},
    {"ticker_frame", (PyCFunction)(void (*)(void))ticker_frame, METH_FASTCALL,
     "ticker_frame(decoder, frame, ts_local) -> list | None: a canonical ticker notification's events."},
    {"string_end", (PyCFunction)string_end, METH_O,
     "string_end(text: bytes) -> int: the length of the JSON string at the start of text as the "
     "scanner reads it (quotes included), -1 when it takes none; for the tests."},
    {"member_index", (PyCFunction)member_index, METH_O,
     "member_index(name: bytes) -> (int, int): a ticker member's index in the table, found as "
     "ticker_frame finds it and by a scan of the table (-1: not a member); for the tests."},
    {"trades_frame", (PyCFunction)(void (*)(void))trades_frame, METH_FASTCALL,
     "trades_frame(decoder, frame, ts_local) -> list | None: a canonical trades notification's events."},
    {NULL, NULL, 0, NULL},
};

/* The module released: its table of names and the decoder class it learnt let go (refilled,
 * relearnt on use); what `setup` was given stays (see _fast.c's module_free). */
static void module_free(void *module) {
    (void)module;
    json_cache_clear(names, NAME_CACHE);
    Py_CLEAR(decoder_class.type);
    decoder_class.version = 0;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_frames", "Whole-frame Deribit ticker and trades decoding (codec.py's hook).",
    -1, methods, NULL, NULL, NULL, module_free,
};

PyMODINIT_FUNC PyInit__frames(void) {
    json_init();
    s_states = PyUnicode_InternFromString("_states");
    if (s_states == NULL) return NULL;
    return PyModule_Create(&module);
}
