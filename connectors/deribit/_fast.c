/* The compiled half of the Deribit book path (codec.py), issue 17.
 *
 * `apply` is `codec._apply` (a book message's levels applied to an `OrderBook`, the event's
 * (price, size) pairs returned) and `book_events` is the common case of
 * `DeribitDecoder._book_events`: a change that follows the valid book's last change id, or a
 * snapshot of a valid book, applied and its `BookUpdate` built. Every other case (a first
 * snapshot, a resync, a gap, a change before any snapshot, a crossed book) is handed to the
 * Python methods, which stay the reference:
 * tests/connectors/deribit/test_deribit_compiled.py feeds the same frames to a decoder built with
 * this module and one without it and compares every outcome and the whole decoder state.
 *
 * The same Python objects and the same operations in the same order as the Python code: the
 * book stays the `OrderBook` (dict of int ticks -> float size) that the simulated venue and the
 * strategies read; ticks are `round(price * inverse)` as Python rounds (half to even, ValueError
 * on NaN, OverflowError on an infinity, through the same `PyLong_FromDouble`), so a frame that
 * fails, fails here with the same exception after the same partial changes (the decoder's guard
 * then invalidates the books, as for the Python path). Inputs not of the shape msgspec gives
 * (exact lists of exact tuples of str, float, float; exact dicts and floats in the book) go to
 * the Python code untouched. Every C-API result is checked; no buffer is read but through the
 * API. No state of its own beyond the objects `setup` hands it, but tables of immutable objects
 * reused where equal ones are made again (the memo keys, instrument names, tick ints: `key_of`,
 * `name_of`, `tick_int`) and what it learnt of a class (`stats_direct`, `_json.h` `json_attr`),
 * each kept only while it holds (tests/connectors/deribit/test_deribit_decode_caches.py).
 *
 * Python code can run in the middle of it: a strategy holds the decoder's live books
 * (`ctx.book()`) and may put in them keys, sizes or best levels whose hash, comparisons or
 * finalizer run code (a dict lookup compares a key of the same hash; a dropped size is
 * finalized), and any allocation can start a collection. So the compiled path runs only on a
 * book of the exact `OrderBook` type (a subclass's overrides are the Python path's), whose best
 * levels are None or exact ints and its sides exact dicts when a frame starts (a best level is
 * then compared with exact ints only, and a best level recomputed from exact int keys only: in
 * C, with no code run); anything else is the Python path's, from the start of the frame. What
 * can still run code (a planted key's `__eq__`, a finalizer) finds the C code holding a strong
 * reference to every object it uses, reading the level list's length afresh at each step and
 * reading the book's ask side after its bid side, as the Python loop does, with the same
 * operations in the same order: the same outcome. tests/connectors/deribit/
 * test_deribit_compiled.py runs such books on both paths, in a child process.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h> /* T_OBJECT_EX, READONLY: the slots read directly (`getv`) */

#include "_json.h" /* the JSON scanner shared with _frames.c */

/* What codec.py hands over once (`setup`): the Python reference functions and the builder. */
static PyObject *namespace = NULL;      /* codec's globals: `_apply` is looked up there */
static PyObject *py_apply = NULL;       /* codec._apply, as defined */
static PyObject *py_book_events = NULL; /* DeribitDecoder._book_events (the Python method) */
static PyObject *book_update = NULL;    /* the BookUpdate builder (positional) */
static PyObject *ticker = NULL;         /* the Ticker builder (positional) */
static PyObject *venue = NULL;          /* "deribit" */
static PyObject *ms = NULL;             /* 1_000_000: ms -> ns */
static PyObject *py_max = NULL, *py_min = NULL; /* the builtins: a best level recomputed as Python does */

/* Interned names. */
static PyObject *s__apply, *s_clear, *s_inv, *s_bids, *s_asks, *s_bb, *s_ba, *s_int_inv, *s_sequence, *s_valid,
    *s_price_of, *s_type, *s_prev_change_id, *s_change_id, *s_instrument_name, *s_timestamp,
    *s_books, *s_change, *s_pop, *s__crossed;
static PyObject *zero = NULL; /* 0.0: the size of a removed level in the event */

/* The decoder's `_fast`, `_books`, `stats` and `compiled` (`_json.h`'s `json_attr`). */
#define DECODER_NAMES 4
static PlainClass decoder_class = {NULL, 0};
static PyObject *decoder_names[DECODER_NAMES];
static PyObject *decoder_attr(PyObject *decoder, PyObject *name) {
    return json_attr(&decoder_class, decoder, name, decoder_names, DECODER_NAMES);
}


/* Direct reads and writes of the slots of two exact types, `OrderBook` and the book message
 * struct (`codec._BookData`): what a member descriptor does (`PyMember_GetOne`/`SetOne` for
 * T_OBJECT_EX), without the attribute lookup. The offsets come from the types' own member
 * descriptors (`setup`); any other type, a name not registered, or an unset slot goes through
 * PyObject_GetAttr/SetAttr (the same value, or the same AttributeError). */
typedef struct {
    PyObject **name;
    Py_ssize_t offset;
} SlotOffset;
#define MAX_SLOTS 8
static PyTypeObject *book_type = NULL, *data_type = NULL;
static SlotOffset book_slots[MAX_SLOTS], data_slots[MAX_SLOTS];
static int n_book_slots = 0, n_data_slots = 0;

static Py_ssize_t offset_of(PyObject *obj, PyObject *name) {
    SlotOffset *table;
    int n;
    if (Py_TYPE(obj) == book_type) {
        table = book_slots;
        n = n_book_slots;
    } else if (Py_TYPE(obj) == data_type) {
        table = data_slots;
        n = n_data_slots;
    } else {
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (*table[i].name == name) return table[i].offset;
    return -1;
}

static PyObject *getv(PyObject *obj, PyObject *name) {
    Py_ssize_t off = offset_of(obj, name);
    if (off >= 0) {
        PyObject *v = *(PyObject **)((char *)obj + off);
        if (v != NULL) return Py_NewRef(v);
    }
    return PyObject_GetAttr(obj, name);
}

static int setv(PyObject *obj, PyObject *name, PyObject *v) {
    Py_ssize_t off = offset_of(obj, name);
    if (off >= 0) {
        PyObject **slot = (PyObject **)((char *)obj + off);
        PyObject *old = *slot;
        *slot = Py_NewRef(v);
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(obj, name, v);
}

/* The offsets of `names` in `type`: only writable T_OBJECT_EX members (a slot of `__slots__`, a
 * msgspec field); a name that is anything else is left to the attribute protocol. */
/* The writable object slot `name` of `type`'s instances: the member descriptor the attribute
 * protocol finds for it, when it is one of `type` or a base (a descriptor of another class, set
 * as a class attribute, has that class's offset: Python refuses it on `type`'s instances, and
 * its offset may lie past their end). NULL for any other attribute. */
static PyMemberDef *own_slot(PyTypeObject *type, PyObject *name) {
    PyObject *desc = tc_lookup(type, name); /* borrowed */
    if (desc == NULL || !Py_IS_TYPE(desc, &PyMemberDescr_Type) || !PyType_IsSubtype(type, PyDescr_TYPE(desc)))
        return NULL;
    PyMemberDef *m = ((PyMemberDescrObject *)desc)->d_member;
    return m->type == T_OBJECT_EX && !(m->flags & READONLY) ? m : NULL;
}

static int register_slots(PyObject *type, PyObject **const *names, int count, SlotOffset *table,
                          int *n) {
    *n = 0;
    for (int i = 0; i < count && *n < MAX_SLOTS; i++) {
        PyMemberDef *m = own_slot((PyTypeObject *)type, *names[i]);
        if (m == NULL) continue;
        table[*n].name = names[i];
        table[*n].offset = m->offset;
        (*n)++;
    }
    return 0;
}

/* The same for an `OrderBook`'s slots by index (the hot path's reads and writes, no scan of a
 * table): BK_* in the order of `book_attr`; an offset of -1 for a name not registered (`setup`). */
enum { BK_INV, BK_BIDS, BK_ASKS, BK_BB, BK_BA, BK_INT_INV, BK_SEQ, BK_VALID, BK_COUNT };
static PyObject **const book_attr[BK_COUNT] = {&s_inv, &s_bids, &s_asks, &s_bb,
                                               &s_ba,  &s_int_inv, &s_sequence, &s_valid};
static Py_ssize_t book_off[BK_COUNT] = {-1, -1, -1, -1, -1, -1, -1, -1};

/* The slot `k` of an exact `OrderBook`, borrowed; NULL (no exception) when unset or not registered. */
static inline PyObject *bslot(PyObject *book, int k) {
    Py_ssize_t off = book_off[k];
    return Py_TYPE(book) != book_type || off < 0 ? NULL : *(PyObject **)((char *)book + off);
}

/* `getattr(book, name)` for the slot `k` (`getv`). */
static PyObject *bget(PyObject *book, int k) {
    PyObject *v = bslot(book, k);
    return v != NULL ? Py_NewRef(v) : PyObject_GetAttr(book, *book_attr[k]);
}

/* `setattr(book, name, v)` for the slot `k` (`setv`). */
static int bset(PyObject *book, int k, PyObject *v) {
    Py_ssize_t off = book_off[k];
    if (Py_TYPE(book) != book_type || off < 0) return PyObject_SetAttr(book, *book_attr[k], v);
    PyObject **slot = (PyObject **)((char *)book + off);
    PyObject *old = *slot;
    *slot = Py_NewRef(v);
    Py_XDECREF(old);
    return 0;
}

/* Python's `round(x)` for a float x: round half to even, as float.__round__ (ndigits None). */
static double round_even(double x) {
    double r = round(x);
    if (fabs(x - r) == 0.5) r = 2.0 * round(x / 2.0);
    return r;
}

/* The int objects of the ticks met, reused: a direct-mapped table by value. A level's ticks are
 * looked up, set and popped in the book's dicts many times; an int from the table spares making
 * and releasing one each time. An int is immutable and equal to any other of its value, and a
 * dict keeps the key it has when a level is set again: which one a level gets does not show. */
#define TICK_BITS 12
#define TICKS_MAX 4611686018427387904.0 /* 2**62: ticks below it (in magnitude) are cached */
static PyObject *tick_obj[1 << TICK_BITS];
static long long tick_val[1 << TICK_BITS];

/* The int of `v`, a new reference (NULL on no memory). */
static PyObject *tick_int(long long v) {
    size_t i = (size_t)(((uint64_t)v * 0x9E3779B97F4A7C15ULL) >> (64 - TICK_BITS));
    PyObject *o = tick_obj[i];
    if (o != NULL && tick_val[i] == v) return Py_NewRef(o);
    PyObject *t = PyLong_FromLongLong(v);
    if (t == NULL) return NULL;
    Py_XSETREF(tick_obj[i], Py_NewRef(t)); /* an int's release runs no code */
    tick_val[i] = v;
    return t;
}

/* `round(x)` as Python computes it (ValueError on NaN, OverflowError on an infinity, through the
 * same `PyLong_FromDouble`): a new reference, and in *v its value and *small 1 when it is below
 * 2**62 in magnitude (else *small is 0 and *v unset). */
static PyObject *ticks_of(double x, long long *v, int *small) {
    double r = round_even(x);
    if (fabs(r) < TICKS_MAX) { /* false for NaN */
        *small = 1;
        *v = (long long)r;
        return tick_int(*v);
    }
    *small = 0;
    return PyLong_FromDouble(r);
}

/* The value of an exact int `o` in *v when it is within int64: 1, else 0. */
static int small_int(PyObject *o, long long *v) {
    int of = 0;
    *v = PyLong_AsLongLongAndOverflow(o, &of); /* an exact int: no code, no error */
    return !of;
}

/* 1 when `lvl` is an exact (str, float, float) tuple, as msgspec builds a level. */
static int level_shaped(PyObject *lvl) {
    return PyTuple_CheckExact(lvl) && PyTuple_GET_SIZE(lvl) == 3 &&
           PyUnicode_CheckExact(PyTuple_GET_ITEM(lvl, 0)) && PyFloat_CheckExact(PyTuple_GET_ITEM(lvl, 1)) &&
           PyFloat_CheckExact(PyTuple_GET_ITEM(lvl, 2));
}

/* 1 when `levels` is an exact list of levels of msgspec's shape. */
static int levels_shaped(PyObject *levels) {
    if (!PyList_CheckExact(levels)) return 0;
    Py_ssize_t n = PyList_GET_SIZE(levels);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!level_shaped(PyList_GET_ITEM(levels, i))) return 0;
    return 1;
}

/* A best level the compiled path takes: None or an exact int (its comparisons with ticks run no code). */
#define BEST_SHAPED(b) ((b) == Py_None || PyLong_CheckExact(b))

/* `levels[t] = size` */
static int set_level(PyObject *levels, PyObject *t, PyObject *size) {
    return PyDict_CheckExact(levels) ? PyDict_SetItem(levels, t, size) : PyObject_SetItem(levels, t, size);
}

/* `levels.pop(t, None)`: a new reference (one lookup, as the method). */
static PyObject *pop_level(PyObject *levels, PyObject *t) {
    if (!PyDict_CheckExact(levels)) return PyObject_CallMethodObjArgs(levels, s_pop, t, Py_None, NULL);
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *old;
    if (PyDict_Pop(levels, t, &old) < 0) return NULL;
    return old != NULL ? old : Py_NewRef(Py_None);
#else
    return _PyDict_Pop(levels, t, Py_None);
#endif
}

/* `max(levels) if levels else None` (`min` when `op` is Py_LT): a new reference. Exact int keys
 * are compared in C: no code runs and nothing allocates during the scan, so nothing can change
 * the dict under it. At the first key of another type, Python's max()/min() over the dict from
 * its start, as the reference: its comparisons may run code (it holds its references and raises
 * RuntimeError if the dict changes size). */
static PyObject *extreme(PyObject *levels, int op) {
    if (PyDict_CheckExact(levels)) {
        if (PyDict_GET_SIZE(levels) == 0) return Py_NewRef(Py_None);
        PyObject *key, *value, *m = NULL;
        Py_ssize_t pos = 0;
        long long mv = 0, kv;
        int c = 1; /* every key so far within int64: compared as C integers */
        while (PyDict_Next(levels, &pos, &key, &value)) {
            if (!PyLong_CheckExact(key)) goto builtin;
            if (c && !small_int(key, &kv)) c = 0;
            if (m == NULL) {
                m = key;
                mv = kv;
                continue;
            }
            int better;
            if (c) {
                better = op == Py_GT ? kv > mv : kv < mv;
            } else {
                better = PyObject_RichCompareBool(key, m, op); /* -1 only at the recursion limit */
                if (better < 0) return NULL;
            }
            if (better) {
                m = key;
                mv = kv;
            }
        }
        return Py_NewRef(m);
    } else {
        int r = PyObject_IsTrue(levels);
        if (r < 0) return NULL;
        if (!r) return Py_NewRef(Py_None);
    }
builtin:
    return PyObject_CallOneArg(op == Py_GT ? py_max : py_min, levels);
}

/* A book level parsed from a raw frame (`book_frame`): its action, price and amount, the
 * doubles msgspec gives for them. */
enum { ACT_NEW, ACT_CHANGE, ACT_DELETE };
typedef struct {
    double price, size;
    int action;
} Level;

/* The levels of one side, from either source: `list` (a Python list of msgspec's (str, float,
 * float) tuples, read afresh at each step), or, when `list` is NULL, `n` parsed levels at `lv`. */
typedef struct {
    PyObject *list;
    const Level *lv;
    Py_ssize_t n;
} Levels;

/* One side of `_apply`. `best` is a new reference in and out (None for an empty side); `out` is
 * set to a new tuple of (price, size) pairs. -1 with an exception set, 0 on success.
 *
 * The Python loop's operations in its order. Code may run in the dict's lookups (a planted key
 * of the same hash) and where a dropped object is released: so the list's length is read at
 * each step (the list iterator's), and each level is held, then checked again. A level no
 * longer of msgspec's shape (the decoder's own list changed by such code) is a RuntimeError:
 * the frame's fault. Parsed levels (`in->list` NULL) become the floats msgspec would build. */
static int apply_side(PyObject *levels, const Levels *in, double inv, int op, PyObject **best, PyObject **out) {
    Py_ssize_t cap = in->list != NULL ? PyList_GET_SIZE(in->list) : in->n, n = 0;
    PyObject *pairs = PyTuple_New(cap);
    if (pairs == NULL) return -1;
    int stale = 0;
    /* The best level's value when it is an exact int within int64 (`best_c`): an exact int's
     * comparison runs no code, so two such are compared as C integers, the same answer. */
    long long best_v = 0;
    int best_c = PyLong_CheckExact(*best) && small_int(*best, &best_v);
    for (Py_ssize_t i = 0; i < (in->list != NULL ? PyList_GET_SIZE(in->list) : in->n); i++) {
        PyObject *lvl = NULL, *price = NULL, *size = NULL, *t = NULL, *pair = NULL;
        double p, sz;
        long long tv = 0;
        int live, t_c;
        if (in->list != NULL) {
            lvl = Py_NewRef(PyList_GET_ITEM(in->list, i));
            if (!level_shaped(lvl)) {
                PyErr_SetString(PyExc_RuntimeError, "book levels changed while they were applied");
                goto fail;
            }
            price = Py_NewRef(PyTuple_GET_ITEM(lvl, 1));
            size = Py_NewRef(PyTuple_GET_ITEM(lvl, 2));
            p = PyFloat_AS_DOUBLE(price);
            sz = PyFloat_AS_DOUBLE(size);
            live = sz > 0 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(lvl, 0), "delete") != 0;
        } else {
            p = in->lv[i].price;
            sz = in->lv[i].size;
            live = sz > 0 && in->lv[i].action != ACT_DELETE;
            price = PyFloat_FromDouble(p);
            if (price == NULL) goto fail;
            if (live && (size = PyFloat_FromDouble(sz)) == NULL) goto fail;
        }
        t = ticks_of(p * inv, &tv, &t_c);
        if (t == NULL) goto fail;
        if (live) {
            if (set_level(levels, t, size) < 0) goto fail;
            int better = 1;
            if (*best != Py_None) {
                if (t_c && best_c) {
                    better = op == Py_GT ? tv > best_v : tv < best_v;
                } else {
                    better = PyObject_RichCompareBool(t, *best, op);
                    if (better < 0) goto fail;
                }
            }
            if (better) {
                Py_SETREF(*best, Py_NewRef(t));
                best_c = t_c;
                best_v = tv;
            }
        } else {
            /* `levels.pop(t, None) is not None and t == best` */
            PyObject *old = pop_level(levels, t);
            if (old == NULL) goto fail;
            int was_value = old != Py_None;
            Py_DECREF(old); /* may run a finalizer: what follows holds its own references */
            if (was_value && *best != Py_None) {
                int eq;
                if (t_c && best_c) {
                    eq = tv == best_v;
                } else {
                    eq = PyObject_RichCompareBool(t, *best, Py_EQ);
                    if (eq < 0) goto fail;
                }
                if (eq) stale = 1;
            }
        }
        pair = PyTuple_New(2); /* (price, size), or (price, 0.0) for a removal */
        if (pair == NULL) goto fail;
        PyTuple_SET_ITEM(pair, 0, Py_NewRef(price));
        PyTuple_SET_ITEM(pair, 1, Py_NewRef(live ? size : zero));
        if (n == cap) { /* the list grew (code run above appended to it): as Python, its levels apply too */
            cap += cap / 2 + 4;
            if (_PyTuple_Resize(&pairs, cap) < 0) goto fail;
        }
        PyTuple_SET_ITEM(pairs, n++, pair);
        Py_DECREF(t);
        Py_DECREF(price);
        Py_XDECREF(size);
        Py_XDECREF(lvl);
        continue;
    fail:
        Py_XDECREF(pair);
        Py_XDECREF(price);
        Py_XDECREF(size);
        Py_XDECREF(t);
        Py_XDECREF(lvl);
        Py_XDECREF(pairs);
        return -1;
    }
    if (n != cap && _PyTuple_Resize(&pairs, n) < 0) return -1; /* it shrank or grew */
    if (stale) {
        PyObject *m = extreme(levels, op);
        if (m == NULL) {
            Py_DECREF(pairs);
            return -1;
        }
        Py_SETREF(*best, m);
    }
    *out = pairs;
    return 0;
}

/* 1 when `book` is an exact `OrderBook` in the state the decoder keeps (see the header): its
 * inverse an exact float, its sides exact dicts, its best levels None or exact ints. */
static int book_shaped(PyObject *book) {
    if (Py_TYPE(book) != book_type) return 0;
    PyObject *inv_obj = bslot(book, BK_INV), *bids = bslot(book, BK_BIDS), *bb = bslot(book, BK_BB);
    PyObject *ba = bslot(book, BK_BA), *asks = bslot(book, BK_ASKS);
    return inv_obj != NULL && PyFloat_CheckExact(inv_obj) && bids != NULL && PyDict_CheckExact(bids) &&
           bb != NULL && BEST_SHAPED(bb) && asks != NULL && PyDict_CheckExact(asks) && ba != NULL &&
           BEST_SHAPED(ba);
}

/* `_apply`'s body on a shaped book (`book_shaped`), the levels from either source: the bid and
 * ask pairs in *bid_pairs and *ask_pairs (new references). -1 with an exception set. */
static int apply_split(PyObject *book, const Levels *bid_levels, const Levels *ask_levels, PyObject **bid_pairs,
                       PyObject **ask_pairs) {
    /* `inv = book.inverse_quantum; levels = book.bids; best = book.best_bid_ticks` */
    double inv = PyFloat_AS_DOUBLE(bslot(book, BK_INV));
    PyObject *bids = Py_NewRef(bslot(book, BK_BIDS)), *bb = Py_NewRef(bslot(book, BK_BB));
    PyObject *asks = NULL, *ba = NULL; /* read after the bid side, as Python does: code run there may change them */
    int r = -1;
    *bid_pairs = *ask_pairs = NULL;
    if (apply_side(bids, bid_levels, inv, Py_GT, &bb, bid_pairs) < 0) goto done;
    /* `levels = book.asks; best = book.best_ask_ticks`: the same AttributeError if unset */
    asks = bget(book, BK_ASKS);
    if (asks == NULL) goto done;
    ba = bget(book, BK_BA);
    if (ba == NULL) goto done;
    if (apply_side(asks, ask_levels, inv, Py_LT, &ba, ask_pairs) < 0) goto done;
    /* `book.set_best(best_bid, best_ask)` */
    if (bset(book, BK_BB, bb) < 0) goto done;
    if (bset(book, BK_BA, ba) < 0) goto done;
    r = 0;
done:
    Py_DECREF(bids);
    Py_DECREF(bb);
    Py_XDECREF(asks);
    Py_XDECREF(ba);
    if (r < 0) {
        Py_CLEAR(*bid_pairs);
        Py_CLEAR(*ask_pairs);
    }
    return r;
}

/* `apply_split`'s pairs as `_apply` returns them: (bids, asks), or NULL. */
static PyObject *apply_core(PyObject *book, const Levels *bid_levels, const Levels *ask_levels) {
    PyObject *bid_pairs, *ask_pairs;
    if (apply_split(book, bid_levels, ask_levels, &bid_pairs, &ask_pairs) < 0) return NULL;
    PyObject *result = PyTuple_Pack(2, bid_pairs, ask_pairs);
    Py_DECREF(bid_pairs);
    Py_DECREF(ask_pairs);
    return result;
}

/* `_apply(book, bid_levels, ask_levels)` on levels of msgspec's shape: the (bids, asks) pairs,
 * or NULL. The Python function for anything else, and whatever `codec._apply` is when it is not
 * the function defined there (a test's injected fault); the Python function too for any book
 * but an exact `OrderBook` (its `inverse_quantum`, `set_best` and best levels may be overridden)
 * and for one whose state is not what the decoder keeps (see the header). */
static PyObject *apply_levels(PyObject *book, PyObject *bid_levels, PyObject *ask_levels) {
    PyObject *current = PyDict_GetItemWithError(namespace, s__apply); /* borrowed */
    if (current == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_NameError, "name '_apply' is not defined");
        return NULL;
    }
    if (current != py_apply || Py_TYPE(book) != book_type || !levels_shaped(bid_levels) ||
        !levels_shaped(ask_levels))
        return PyObject_CallFunctionObjArgs(current, book, bid_levels, ask_levels, NULL);
    if (!book_shaped(book)) return PyObject_CallFunctionObjArgs(py_apply, book, bid_levels, ask_levels, NULL);
    Levels b = {bid_levels, NULL, 0}, a = {ask_levels, NULL, 0};
    return apply_core(book, &b, &a);
}

static PyObject *fast_apply(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "apply(book, bid_levels, ask_levels)");
        return NULL;
    }
    if (namespace == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fast.setup() was not called");
        return NULL;
    }
    return apply_levels(args[0], args[1], args[2]);
}

/* `book.price_of(ticks)`: `ticks / int_inv` when both are below 2**53 (CPython's int true
 * division is then exactly this double division); the method itself otherwise. */
static PyObject *price_of(PyObject *book, PyObject *ticks) {
    PyObject *int_inv = bget(book, BK_INT_INV);
    if (int_inv == NULL) return NULL;
    if (PyLong_CheckExact(int_inv) && PyLong_CheckExact(ticks)) {
        int of1 = 0, of2 = 0;
        long long q = PyLong_AsLongLongAndOverflow(int_inv, &of1);
        if (q == -1 && PyErr_Occurred()) {
            Py_DECREF(int_inv);
            return NULL;
        }
        long long t = PyLong_AsLongLongAndOverflow(ticks, &of2);
        if (t == -1 && PyErr_Occurred()) {
            Py_DECREF(int_inv);
            return NULL;
        }
        if (!of1 && !of2 && q > 0 && (double)q < TWO53 && fabs((double)t) < TWO53) {
            Py_DECREF(int_inv);
            return PyFloat_FromDouble((double)t / (double)q);
        }
    }
    Py_DECREF(int_inv);
    return PyObject_CallMethodOneArg(book, s_price_of, ticks);
}

/* The Python method for every case but the common one. */
static PyObject *reference(PyObject *decoder, PyObject *d, PyObject *ts_local) {
    return PyObject_CallFunctionObjArgs(py_book_events, decoder, d, ts_local, NULL);
}

/* The end of `_book_events`' common case, once the levels are applied (`bid_pairs`, `ask_pairs`
 * the event's pairs): a snapshot makes the book valid, the sequence is the change id, then a crossed book
 * goes to `decoder._crossed` (a subclass's own when it has one), else the `BookUpdate` is built
 * from the book's top. A new list of one event, or NULL. */
static PyObject *book_tail(PyObject *decoder, PyObject *book, PyObject *inst, int snapshot, PyObject *bid_pairs,
                           PyObject *ask_pairs, PyObject *change_id, PyObject *ts, PyObject *ts_local) {
    PyObject *bb = NULL, *ba = NULL, *result = NULL, *event = NULL;
    PyObject *bid = NULL, *bid_size = NULL, *ask = NULL, *ask_size = NULL;
    int r;
    if (snapshot && bset(book, BK_VALID, Py_True) < 0) goto done;
    if (bset(book, BK_SEQ, change_id) < 0) goto done;
    bb = bget(book, BK_BB);
    if (bb == NULL) goto done;
    ba = bget(book, BK_BA);
    if (ba == NULL) goto done;
    if (bb != Py_None && ba != Py_None) {
        long long bv, av;
        if (PyLong_CheckExact(bb) && PyLong_CheckExact(ba) && small_int(bb, &bv) && small_int(ba, &av)) {
            r = bv >= av; /* exact ints: no code runs in their comparison (`apply_side`) */
        } else {
            r = PyObject_RichCompareBool(bb, ba, Py_GE);
            if (r < 0) goto done;
        }
        if (r) {
            event = PyObject_CallMethodObjArgs(decoder, s__crossed, book, inst, ts, ts_local, change_id, NULL);
            if (event == NULL) goto done;
            goto listed;
        }
    }
    if (bb == Py_None) {
        bid = Py_NewRef(Py_None);
        bid_size = Py_NewRef(Py_None);
    } else {
        /* `book.price_of(bb)`, then `book.bids[bb]` (as `top()`) */
        bid = price_of(book, bb);
        if (bid == NULL) goto done;
        PyObject *levels = bget(book, BK_BIDS);
        if (levels == NULL) goto done;
        bid_size = PyObject_GetItem(levels, bb);
        Py_DECREF(levels);
        if (bid_size == NULL) goto done;
    }
    if (ba == Py_None) {
        ask = Py_NewRef(Py_None);
        ask_size = Py_NewRef(Py_None);
    } else {
        ask = price_of(book, ba);
        if (ask == NULL) goto done;
        PyObject *levels = bget(book, BK_ASKS);
        if (levels == NULL) goto done;
        ask_size = PyObject_GetItem(levels, ba);
        Py_DECREF(levels);
        if (ask_size == NULL) goto done;
    }
    {
        PyObject *argv[12] = {venue,
                              inst,
                              ts,
                              ts_local,
                              snapshot ? Py_True : Py_False,
                              bid_pairs,
                              ask_pairs,
                              bid,
                              bid_size,
                              ask,
                              ask_size,
                              change_id};
        event = PyObject_Vectorcall(book_update, argv, 12, NULL);
    }
    if (event == NULL) goto done;
listed:
    result = PyList_New(1);
    if (result == NULL) goto done;
    PyList_SET_ITEM(result, 0, event);
    event = NULL;
done:
    Py_XDECREF(bb);
    Py_XDECREF(ba);
    Py_XDECREF(bid);
    Py_XDECREF(bid_size);
    Py_XDECREF(ask);
    Py_XDECREF(ask_size);
    Py_XDECREF(event);
    return result;
}

/* `book_tail` given what `_apply` returned (`pairs`): (bids, asks), or a TypeError. */
static PyObject *book_tail_pairs(PyObject *decoder, PyObject *book, PyObject *inst, int snapshot, PyObject *pairs,
                                 PyObject *change_id, PyObject *ts, PyObject *ts_local) {
    if (!PyTuple_CheckExact(pairs) || PyTuple_GET_SIZE(pairs) != 2) {
        PyErr_SetString(PyExc_TypeError, "_apply must return (bids, asks)");
        return NULL;
    }
    return book_tail(decoder, book, inst, snapshot, PyTuple_GET_ITEM(pairs, 0), PyTuple_GET_ITEM(pairs, 1),
                     change_id, ts, ts_local);
}

/* `DeribitDecoder._book_events(decoder, d, ts_local)` for the two common cases: a change that
 * follows the valid book's sequence, and a snapshot of a book that is valid (the Python method
 * for the others: the first snapshot, a resync, a gap, a change before any snapshot). */
static PyObject *fast_book_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "book_events(decoder, data, ts_local)");
        return NULL;
    }
    if (namespace == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fast.setup() was not called");
        return NULL;
    }
    PyObject *decoder = args[0], *d = args[1], *ts_local = args[2];
    PyObject *type = NULL, *prev = NULL, *inst = NULL, *books = NULL, *book = NULL, *valid = NULL;
    PyObject *seq = NULL, *bid_levels = NULL, *ask_levels = NULL, *pairs = NULL, *change_id = NULL;
    PyObject *ms_ts = NULL, *ts = NULL, *result = NULL;
    int r, snapshot;

    type = getv(d, s_type);
    if (type == NULL) goto done;
    r = PyObject_RichCompareBool(type, s_change, Py_EQ);
    if (r < 0) goto done;
    snapshot = !r; /* the type is "snapshot" or "change" (msgspec's Literal) */
    if (!snapshot) {
        prev = getv(d, s_prev_change_id);
        if (prev == NULL) goto done;
        if (prev == Py_None) goto other;
    }
    inst = getv(d, s_instrument_name);
    if (inst == NULL) goto done;
    books = decoder_attr(decoder, s_books);
    if (books == NULL) goto done;
    if (!PyDict_CheckExact(books)) goto other;
    book = PyDict_GetItemWithError(books, inst);
    if (book == NULL) {
        if (PyErr_Occurred()) goto done;
        goto other;
    }
    Py_INCREF(book);
    /* Any book but an exact `OrderBook` (a subclass's `price_of`, `top`, `clear`...), a validity
     * not True and a sequence not an int (their test could run code): the Python method decides. */
    if (Py_TYPE(book) != book_type) goto other;
    valid = bget(book, BK_VALID);
    if (valid == NULL) goto done;
    if (valid != Py_True) goto other;
    if (!snapshot) {
        seq = bget(book, BK_SEQ);
        if (seq == NULL) goto done;
        if (!PyLong_CheckExact(prev) || !PyLong_CheckExact(seq)) goto other;
        r = PyObject_RichCompareBool(prev, seq, Py_NE);
        if (r < 0) goto done;
        if (r) goto other; /* a gap: the Python method reports it */
    } else {
        PyObject *none = PyObject_CallMethodNoArgs(book, s_clear);
        if (none == NULL) goto done;
        Py_DECREF(none);
    }

    bid_levels = getv(d, s_bids);
    if (bid_levels == NULL) goto done;
    ask_levels = getv(d, s_asks);
    if (ask_levels == NULL) goto done;
    pairs = apply_levels(book, bid_levels, ask_levels);
    if (pairs == NULL) goto done;
    change_id = getv(d, s_change_id);
    if (change_id == NULL) goto done;
    ms_ts = getv(d, s_timestamp);
    if (ms_ts == NULL) goto done;
    ts = PyNumber_Multiply(ms_ts, ms);
    if (ts == NULL) goto done;
    result = book_tail_pairs(decoder, book, inst, snapshot, pairs, change_id, ts, ts_local);
    goto done;
other:
    if (!PyErr_Occurred()) result = reference(decoder, d, ts_local);
done:
    Py_XDECREF(type);
    Py_XDECREF(prev);
    Py_XDECREF(inst);
    Py_XDECREF(books);
    Py_XDECREF(book);
    Py_XDECREF(valid);
    Py_XDECREF(seq);
    Py_XDECREF(bid_levels);
    Py_XDECREF(ask_levels);
    Py_XDECREF(pairs);
    Py_XDECREF(change_id);
    Py_XDECREF(ms_ts);
    Py_XDECREF(ts);
    return result;
}

/* -- The raw-frame path (codec._WHOLE_FRAME, issue 17) -----------------------------------------
 *
 * `book_frame` and `quote_frame` take a raw notification in the canonical shape the venue and the
 * recorder write, `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"<name>","data":
 * {...}}}` with no whitespace, and do what msgspec's parse (`_FastFrame[_BookData]`,
 * `_FastFrame[_QuoteData]`) and the body (`book_events`, `_quote_events`) do, without the parse's
 * objects. The whole frame is read and checked before anything changes; None (nothing changed) for
 * any frame not exactly of that shape: not exactly bytes, another envelope, a byte after it,
 * whitespace, an escape or a byte outside printable ASCII in a string, a data member unknown,
 * missing or repeated, a number form not handled here or outside its type's bounds (msgspec's
 * `Price`, `Amount`, `Millis`, int64), and for every book state but the common case (below).
 * Numbers are what msgspec gives: an integer literal in a float field is that integer's float (`-0`
 * is 0.0); a decimal one is the correctly rounded double (exact in the fast case below,
 * `PyOS_string_to_double` otherwise); integer fields take integer literals only. Every read is
 * bounded by the frame's end. */

typedef struct {
    const char *p, *end;
} Cur;

#define AT(c, ch) ((c)->p < (c)->end && *(c)->p == (ch))

/* Skip the literal `lit` (n bytes): 1 when it is there. */
static int lit(Cur *c, const char *text, size_t n) {
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, text, n) != 0) return 0;
    c->p += n;
    return 1;
}
#define LIT(c, s) lit((c), (s), sizeof(s) - 1)

/* A string (`_json.h`): its bytes in [*s, *s + *n). */
static int str_token(Cur *c, const char **s, Py_ssize_t *n) {
    Ptr text;
    Ptr q = json_str((Ptr)c->p, (Ptr)c->end, &text, n);
    if (q == NULL) return 0;
    *s = (const char *)text;
    c->p = (const char *)q;
    return 1;
}

/* A JSON number as msgspec reads it for a float field (`as_float`, *x) or an int one (*i):
 * `_json.h`. 0 to refuse; never raises. */
static int number(Cur *c, int as_float, double *x, long long *i) {
    Ptr q = json_number((Ptr)c->p, (Ptr)c->end, as_float, x, i);
    if (q == NULL) return 0;
    c->p = (const char *)q;
    return 1;
}

/* msgspec's bounds: `Price` (-2**53, 2**53), `Amount` [0, 2**53), `Millis` [0, (2**63-1)//10**6]. */
#define PRICE_OK(x) ((x) > -TWO53 && (x) < TWO53)
#define AMOUNT_OK(x) ((x) >= 0 && (x) < TWO53)
#define MILLIS_MAX 9223372036854LL

/* The envelope (`_json.h`): *ch, *ch_n the channel's name, the cursor on the data's value and
 * its end the data's end (the frame's `}}` checked). */
static int envelope(Cur *c, const char **ch, Py_ssize_t *ch_n) {
    Ptr name, data, data_end;
    if (!json_envelope((Ptr)c->p, c->end - c->p, &name, ch_n, &data, &data_end)) return 0;
    *ch = (const char *)name;
    c->p = (const char *)data;
    c->end = (const char *)data_end;
    return 1;
}

/* After the data's value: the data's end (the frame's `}}` follows it, `envelope`). */
static int envelope_end(Cur *c) { return c->p == c->end; }

/* The channel's name is `head` then non-empty dot-separated parts, `parts` in all. */
static int channel_is(const char *ch, Py_ssize_t n, const char *head, int parts) {
    return json_channel_is((Ptr)ch, n, head, parts, parts);
}

/* The instrument's name as a str (`_json.h`'s cache: made once per name, its hash too). */
#define NAME_CACHE 1024
static PyObject *names[NAME_CACHE];
static PyObject *name_of(const char *s, Py_ssize_t n) { return json_ascii_cached(names, NAME_CACHE, (Ptr)s, n); }

/* A book side's levels, `[["new",price,amount],...]`, appended to `buf` (grown as needed: `*cap`
 * levels, `*heap` when it was moved off the stack). 1, 0 to refuse, -1 on a memory error. */
static int levels_of(Cur *c, Level **buf, Py_ssize_t *n, Py_ssize_t *cap, int *heap) {
    if (!LIT(c, "[")) return 0;
    if (LIT(c, "]")) return 1;
    for (;;) {
        const char *a;
        Py_ssize_t an;
        Level lv;
        if (!LIT(c, "[") || !str_token(c, &a, &an) || !LIT(c, ",")) return 0;
        if (an == 3 && memcmp(a, "new", 3) == 0) lv.action = ACT_NEW;
        else if (an == 6 && memcmp(a, "change", 6) == 0) lv.action = ACT_CHANGE;
        else if (an == 6 && memcmp(a, "delete", 6) == 0) lv.action = ACT_DELETE;
        else return 0;
        if (!number(c, 1, &lv.price, NULL) || !PRICE_OK(lv.price) || !LIT(c, ",")) return 0;
        if (!number(c, 1, &lv.size, NULL) || !AMOUNT_OK(lv.size) || !LIT(c, "]")) return 0;
        if (*n == *cap) {
            Py_ssize_t grown = *cap * 2;
            Level *more = *heap ? PyMem_Realloc(*buf, (size_t)grown * sizeof(Level))
                                : PyMem_Malloc((size_t)grown * sizeof(Level));
            if (more == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            if (!*heap) memcpy(more, *buf, (size_t)*n * sizeof(Level));
            *buf = more;
            *cap = grown;
            *heap = 1;
        }
        (*buf)[(*n)++] = lv;
        if (LIT(c, "]")) return 1;
        if (!LIT(c, ",")) return 0;
    }
}

/* A data member's name, then its colon: the member's index in `names` (-1: unknown). */
typedef struct {
    const char *name;
    Py_ssize_t n;
} Name;
#define NAME(lit) {lit, (Py_ssize_t)(sizeof(lit) - 1)}

static int member(Cur *c, const Name *names, int count) {
    const char *k;
    Py_ssize_t kn;
    if (!str_token(c, &k, &kn) || !LIT(c, ":")) return -2;
    for (int j = 0; j < count; j++)
        if (kn == names[j].n && k[0] == names[j].name[0] && memcmp(k, names[j].name, (size_t)kn) == 0) return j;
    return -1;
}

enum { B_TYPE, B_INST, B_TS, B_CHANGE, B_PREV, B_BIDS, B_ASKS, B_COUNT };
static const Name BOOK_MEMBERS[B_COUNT] = {NAME("type"),           NAME("instrument_name"), NAME("timestamp"),
                                           NAME("change_id"),      NAME("prev_change_id"),  NAME("bids"),
                                           NAME("asks")};
#define STACK_LEVELS 128

/* `book_frame(decoder, frame, ts_local)`: the events of a `book.<instrument>.<interval>` frame, as
 * `decode` gives them, or None (nothing changed). The common case only: a change that follows the
 * valid book's change id, or a snapshot of a valid book, on an exact `OrderBook` in the state the
 * decoder keeps, `codec._apply` the function defined there. */
static PyObject *fast_book_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "book_frame(decoder, frame, ts_local)");
        return NULL;
    }
    /* A frame not exactly bytes is the Python path's, a bytes subclass's too: `decode` routes
     * those here (its route asks `isinstance`), and they were a TypeError, the decoder's fault. */
    if (!PyBytes_CheckExact(args[1])) Py_RETURN_NONE;
    if (namespace == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fast.setup() was not called");
        return NULL;
    }
    PyObject *decoder = args[0], *frame = args[1], *ts_local = args[2];
    Cur cur = {PyBytes_AS_STRING(frame), PyBytes_AS_STRING(frame) + PyBytes_GET_SIZE(frame)}, *c = &cur;
    Level stack[STACK_LEVELS], *buf = stack;
    Py_ssize_t cap = STACK_LEVELS, n = 0, n_bids = 0, bids_at = 0, asks_at = 0;
    int heap = 0, seen = 0, snapshot = 0, has_prev = 0;
    const char *ch, *name = NULL;
    Py_ssize_t ch_n, name_n = 0;
    long long ts_ms = 0, change = 0, prev = 0;
    PyObject *result = NULL, *inst = NULL, *books = NULL, *book = NULL, *pairs = NULL;
    PyObject *change_obj = NULL, *ts = NULL;

    if (!envelope(c, &ch, &ch_n) || !channel_is(ch, ch_n, "book.", 3) || !LIT(c, "{")) goto refuse;
    for (;;) {
        int k = member(c, BOOK_MEMBERS, B_COUNT);
        if (k < 0 || (seen & (1 << k))) goto refuse; /* unknown or repeated */
        seen |= 1 << k;
        switch (k) {
        case B_TYPE: {
            const char *t;
            Py_ssize_t tn;
            if (!str_token(c, &t, &tn)) goto refuse;
            if (tn == 8 && memcmp(t, "snapshot", 8) == 0) snapshot = 1;
            else if (!(tn == 6 && memcmp(t, "change", 6) == 0)) goto refuse;
            break;
        }
        case B_INST:
            if (!str_token(c, &name, &name_n)) goto refuse;
            break;
        case B_TS:
            if (!number(c, 0, NULL, &ts_ms) || ts_ms < 0 || ts_ms > MILLIS_MAX) goto refuse;
            break;
        case B_CHANGE:
            if (!number(c, 0, NULL, &change)) goto refuse;
            break;
        case B_PREV:
            if (LIT(c, "null")) break;
            if (!number(c, 0, NULL, &prev)) goto refuse;
            has_prev = 1;
            break;
        case B_BIDS:
        case B_ASKS: {
            Py_ssize_t at = n;
            int r = levels_of(c, &buf, &n, &cap, &heap);
            if (r < 0) goto done;
            if (r == 0) goto refuse;
            if (k == B_BIDS) {
                bids_at = at;
                n_bids = n - at;
            } else {
                asks_at = at;
            }
            break;
        }
        }
        if (LIT(c, "}")) break;
        if (!LIT(c, ",")) goto refuse;
    }
    if ((seen | (1 << B_PREV)) != (1 << B_COUNT) - 1 || !envelope_end(c)) goto refuse;
    if (!snapshot && !has_prev) goto refuse; /* the reference says why */

    /* The objects the event needs first: an allocation may start a collection, whose finalizers
     * may run code, so none is made between the checks of the book's state below and its use. */
    inst = name_of(name, name_n);
    if (inst == NULL) goto done;
    change_obj = PyLong_FromLongLong(change);
    if (change_obj == NULL) goto done;
    ts = PyLong_FromLongLong(ts_ms * 1000000LL); /* <= 2**63 - 1 (MILLIS_MAX) */
    if (ts == NULL) goto done;
    books = decoder_attr(decoder, s_books);
    if (books == NULL) goto done;
    if (!PyDict_CheckExact(books)) goto refuse;
    /* The book's state: the common case, or None. What runs code here (a planted key's `__eq__`
     * in the lookup) runs before the checks. */
    book = PyDict_GetItemWithError(books, inst);
    if (book == NULL) {
        if (PyErr_Occurred()) goto done;
        goto refuse; /* a first snapshot, or a change before any */
    }
    Py_INCREF(book);
    PyObject *current = PyDict_GetItemWithError(namespace, s__apply); /* borrowed, no code run */
    if (current != py_apply) {
        if (current == NULL && PyErr_Occurred()) goto done;
        goto refuse;
    }
    if (!book_shaped(book) || bslot(book, BK_VALID) != Py_True) goto refuse;
    if (!snapshot) {
        PyObject *seq = bslot(book, BK_SEQ);
        if (seq == NULL || !PyLong_CheckExact(seq)) goto refuse;
        int of = 0;
        long long s = PyLong_AsLongLongAndOverflow(seq, &of);
        if (s == -1 && PyErr_Occurred()) goto done;
        if (of || s != prev) goto refuse; /* a gap: the Python method reports it */
    }

    /* From here the book changes, as the reference changes it. */
    Levels bid_levels = {NULL, buf + bids_at, n_bids}, ask_levels = {NULL, buf + asks_at, n - n_bids};
    if (snapshot) {
        PyObject *none = PyObject_CallMethodNoArgs(book, s_clear);
        if (none == NULL) goto done;
        Py_DECREF(none);
        if (!book_shaped(book)) {
            /* code run by `clear` (a finalizer) changed the book: `_apply` on msgspec's lists */
            PyObject *lists[2] = {NULL, NULL};
            for (int side = 0; side < 2; side++) {
                const Levels *src = side ? &ask_levels : &bid_levels;
                if ((lists[side] = PyList_New(src->n)) == NULL) break;
                for (Py_ssize_t j = 0; j < src->n; j++) {
                    static const char *const ACTIONS[3] = {"new", "change", "delete"};
                    PyObject *lvl = Py_BuildValue("(sdd)", ACTIONS[src->lv[j].action], src->lv[j].price,
                                                  src->lv[j].size);
                    if (lvl == NULL) {
                        Py_CLEAR(lists[side]);
                        break;
                    }
                    PyList_SET_ITEM(lists[side], j, lvl);
                }
                if (lists[side] == NULL) break;
            }
            if (lists[0] != NULL && lists[1] != NULL) pairs = apply_levels(book, lists[0], lists[1]);
            Py_XDECREF(lists[0]);
            Py_XDECREF(lists[1]);
            if (pairs == NULL) goto done;
        }
    }
    if (pairs != NULL) {
        result = book_tail_pairs(decoder, book, inst, snapshot, pairs, change_obj, ts, ts_local);
    } else {
        PyObject *bid_pairs, *ask_pairs;
        if (apply_split(book, &bid_levels, &ask_levels, &bid_pairs, &ask_pairs) < 0) goto done;
        result = book_tail(decoder, book, inst, snapshot, bid_pairs, ask_pairs, change_obj, ts, ts_local);
        Py_DECREF(bid_pairs);
        Py_DECREF(ask_pairs);
    }
    goto done;
refuse:
    if (!PyErr_Occurred()) result = Py_NewRef(Py_None);
done:
    if (heap) PyMem_Free(buf);
    Py_XDECREF(inst);
    Py_XDECREF(books);
    Py_XDECREF(book);
    Py_XDECREF(pairs);
    Py_XDECREF(change_obj);
    Py_XDECREF(ts);
    return result;
}

enum { Q_INST, Q_TS, Q_BID, Q_BID_SIZE, Q_ASK, Q_ASK_SIZE, Q_COUNT };
static const Name QUOTE_MEMBERS[Q_COUNT] = {NAME("instrument_name"), NAME("timestamp"),
                                           NAME("best_bid_price"),  NAME("best_bid_amount"),
                                           NAME("best_ask_price"),  NAME("best_ask_amount")};

/* codec's `_top` and `_ticker` as `setup` found them: a test that patches one (to inject a
 * fault) sends quote frames to the Python path, which then meets the patch (as `_frames.c`'s
 * pins and `_apply` here do). */
static struct {
    const char *name;
    PyObject *key;   /* interned */
    PyObject *value; /* as found by `setup` */
} quote_pins[2] = {{"_top", NULL, NULL}, {"_ticker", NULL, NULL}};

/* `quote_frame(decoder, frame, ts_local)`: the `Ticker` of a `quote.<instrument>` frame, as
 * `_quote_events` builds it (an empty side, amount 0, is None), or None (a bid above the ask
 * goes to the reference, which refuses the frame). No state changes. */
static PyObject *fast_quote_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "quote_frame(decoder, frame, ts_local)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[1])) Py_RETURN_NONE; /* the Python path's, as in `book_frame` */
    if (ticker == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fast.setup() was not called");
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        PyObject *v = PyDict_GetItemWithError(namespace, quote_pins[i].key); /* borrowed; str keys */
        if (v != quote_pins[i].value) {
            if (v == NULL && PyErr_Occurred()) return NULL;
            Py_RETURN_NONE; /* patched (or deleted): the Python path's */
        }
    }
    PyObject *frame = args[1], *ts_local = args[2];
    Cur cur = {PyBytes_AS_STRING(frame), PyBytes_AS_STRING(frame) + PyBytes_GET_SIZE(frame)}, *c = &cur;
    const char *ch, *name = NULL;
    Py_ssize_t ch_n, name_n = 0;
    long long ts_ms = 0;
    double v[Q_COUNT];
    int seen = 0, null = 0;
    if (!envelope(c, &ch, &ch_n) || !channel_is(ch, ch_n, "quote.", 2) || !LIT(c, "{")) Py_RETURN_NONE;
    for (;;) {
        int k = member(c, QUOTE_MEMBERS, Q_COUNT);
        if (k < 0 || (seen & (1 << k))) Py_RETURN_NONE;
        seen |= 1 << k;
        if (k == Q_INST) {
            if (!str_token(c, &name, &name_n)) Py_RETURN_NONE;
        } else if (k == Q_TS) {
            if (!number(c, 0, NULL, &ts_ms) || ts_ms < 0 || ts_ms > MILLIS_MAX) Py_RETURN_NONE;
        } else if (LIT(c, "null")) {
            null |= 1 << k;
        } else {
            if (!number(c, 1, &v[k], NULL)) Py_RETURN_NONE;
            if ((k == Q_BID || k == Q_ASK) ? !PRICE_OK(v[k]) : !AMOUNT_OK(v[k])) Py_RETURN_NONE;
        }
        if (LIT(c, "}")) break;
        if (!LIT(c, ",")) Py_RETURN_NONE;
    }
    if ((seen & 3) != 3 || !envelope_end(c)) Py_RETURN_NONE;
    null |= ~seen & ((1 << Q_COUNT) - 1); /* absent: None */
    /* `_top`: a side with a zero amount is no quote; a bid above the ask is the reference's */
    if (!(null & (1 << Q_BID_SIZE)) && v[Q_BID_SIZE] == 0) null |= (1 << Q_BID) | (1 << Q_BID_SIZE);
    if (!(null & (1 << Q_ASK_SIZE)) && v[Q_ASK_SIZE] == 0) null |= (1 << Q_ASK) | (1 << Q_ASK_SIZE);
    if (!(null & (1 << Q_BID)) && !(null & (1 << Q_ASK)) && v[Q_BID] > v[Q_ASK]) Py_RETURN_NONE;
    PyObject *argv[17], *result = NULL, *event = NULL;
    for (int j = 0; j < 17; j++) argv[j] = Py_None;
    int made = 0;
    argv[0] = venue;
    if ((argv[1] = name_of(name, name_n)) == NULL) return NULL;
    made = 2; /* argv[1, made) are ours but argv[3] */
    if ((argv[2] = PyLong_FromLongLong(ts_ms * 1000000LL)) == NULL) goto done;
    made = 3;
    argv[3] = ts_local;
    for (int k = Q_BID; k < Q_COUNT; k++) {
        PyObject *x = (null & (1 << k)) ? Py_NewRef(Py_None) : PyFloat_FromDouble(v[k]);
        if (x == NULL) goto done;
        argv[4 + k - Q_BID] = x;
        made = 4 + k - Q_BID + 1;
    }
    event = PyObject_Vectorcall(ticker, argv, 17, NULL);
    if (event == NULL) goto done;
    result = PyList_New(1);
    if (result == NULL) goto done;
    PyList_SET_ITEM(result, 0, event);
    event = NULL;
done:
    Py_XDECREF(event);
    for (int j = 1; j < made; j++)
        if (j != 3) Py_DECREF(argv[j]);
    return result;
}

/* -- The decode entry (issue 17) -------------------------------------------------------------
 *
 * `decode(decoder, frame, ts_local)`: what a compiled decoder's `decode` (`method`, below) runs,
 * with its sniff and route done here before any Python runs. A frame
 * that is exactly `bytes`, starts with the canonical notification prefix and whose channel
 * (the text up to the next `"`) has a route in the decoder's memo (`_fast`, keyed as `decode`
 * keys it) with a whole-frame function is given to that function: its events, counted in
 * `stats.frames` / `stats.events` as `decode` counts them. Every other frame, and one the
 * function refuses (None, nothing changed), goes to the guarded Python `decode` (the reference
 * of this entry), which decides everything else (the memo's first entry of a channel included).
 *
 * The depth guard (`_too_deep`) is not run before the whole-frame function: each one reads its
 * fixed shape (at most 5 levels; an unknown ticker member skipped at most 32 deep) to the frame's
 * last byte before it returns a list or changes anything, so a frame it takes nests far less than
 * MAX_NESTING. When it raises, codec's `_whole_raised` (guard_decode around
 * decode's own handling of that raise) makes the outcome the guarded decode's: the depth check
 * first (a function raises mid-read only before any change: a frame too deep is then refused as
 * the guard refuses it), then the counts, the `DecoderFault` and its cause. A result that is
 * not an exact list (no real function's) is counted by codec's `_whole_returned`, as `decode`
 * counts it (a failure there its guard's fault). */
static PyObject *py_decode = NULL; /* codec._DECODE: the Python decode, guarded (the reference) */
static PyObject *py_raised = NULL; /* codec._whole_raised(decoder, frame, exc): raises */
static PyObject *py_returned = NULL; /* codec._whole_returned(decoder, frame, events): counts */
static PyObject *s__fast, *s_stats, *s_frames, *s_events, *s_compiled;

/* `stats.<name> += by`, as Python does it. -1 with an exception set on failure. */
static int count(PyObject *stats, PyObject *name, Py_ssize_t by) {
    PyObject *v = PyObject_GetAttr(stats, name);
    if (v == NULL) return -1;
    PyObject *d = PyLong_FromSsize_t(by);
    if (d == NULL) {
        Py_DECREF(v);
        return -1;
    }
    PyObject *sum = PyNumber_InPlaceAdd(v, d);
    Py_DECREF(v);
    Py_DECREF(d);
    if (sum == NULL) return -1;
    int r = PyObject_SetAttr(stats, name, sum);
    Py_DECREF(sum);
    return r;
}

/* The stats' `frames` and `events` read and written in their slots, as the attribute protocol
 * does it for a class that does not override it (`engine.venue.spi.DecoderStats`, attrs slots):
 * the offsets of its member descriptors, learnt for the first stats type met (`counted`), used
 * while that type is unchanged (its version tag: any change to the class or a base clears it). */
static PyTypeObject *stats_type = NULL;
static unsigned int stats_version = 0;
static Py_ssize_t stats_off[2] = {-1, -1}; /* frames, events */

static Py_ssize_t member_offset(PyTypeObject *type, PyObject *name) {
    PyMemberDef *m = own_slot(type, name);
    return m != NULL ? m->offset : -1;
}

static int stats_direct(PyObject *stats) {
    PyTypeObject *type = Py_TYPE(stats);
    if (type != stats_type) {
        Py_XSETREF(stats_type, (PyTypeObject *)Py_NewRef(type));
        stats_off[0] = stats_off[1] = -1;
        if (type->tp_getattro == PyObject_GenericGetAttr && type->tp_setattro == PyObject_GenericSetAttr) {
            stats_off[0] = member_offset(type, s_frames);
            stats_off[1] = member_offset(type, s_events);
        }
        stats_version = tc_version(type); /* after the lookups, which give it a tag */
    }
    return stats_off[0] >= 0 && stats_off[1] >= 0 && stats_off[0] != stats_off[1] && stats_version != 0 &&
           tc_version(type) == stats_version;
}

/* The slot at `off` of `stats` when it holds an exact int within int64 that `by` can be added to
 * within int64 (its value in `x`): then `stats.<slot> += by` runs no code (the int's addition,
 * the old int's release). NULL when it is not that case. */
static PyObject **small_count(PyObject *stats, Py_ssize_t off, Py_ssize_t by, long long *x) {
    PyObject **slot = (PyObject **)((char *)stats + off), *v = *slot;
    if (v == NULL || !PyLong_CheckExact(v)) return NULL;
    int of = 0;
    *x = PyLong_AsLongLongAndOverflow(v, &of);
    if (of || *x < 0 || *x > LLONG_MAX - by) return NULL; /* (-1 without overflow is never an error here) */
    return slot;
}

/* A lookup that failed: an `Exception` is left to the Python path, which meets it again (and
 * says so its way); anything else (KeyboardInterrupt...) propagates. 1: go to Python. */
static int python_after_error(void) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return 0;
    PyErr_Clear();
    return 1;
}

/* `stats.frames += 1; stats.events += events` in their slots, as `decode` does them, when both
 * can be (checked before either is written: no code runs between the two writes, so nothing the
 * first count could run, an int subclass's `__add__` changing the class, precedes a direct write
 * of the second). 1: counted; 0: nothing done, no exception (the caller counts both through
 * `decode`'s guard, `codec._whole_returned`: a failure to count is then the guarded decode's
 * fault); -1 with an exception that is no `Exception` (KeyboardInterrupt...) reading the stats. */
static int counted(PyObject *decoder, Py_ssize_t events) {
    PyObject *stats = decoder_attr(decoder, s_stats);
    if (stats == NULL) return python_after_error() ? 0 : -1;
    int r = 0;
    long long f, e;
    PyObject **fs, **es;
    if (stats_direct(stats) && (fs = small_count(stats, stats_off[0], 1, &f)) != NULL &&
        (es = small_count(stats, stats_off[1], events, &e)) != NULL) {
        PyObject *nf = PyLong_FromLongLong(f + 1), *ne = nf == NULL ? NULL : PyLong_FromLongLong(e + events);
        if (ne != NULL) {
            PyObject *of = *fs, *oe = *es;
            *fs = nf;
            *es = ne;
            Py_DECREF(of); /* exact ints: their release runs no code */
            Py_DECREF(oe);
            r = 1;
        } else { /* no memory: nothing written, the guarded counting meets it too */
            Py_XDECREF(nf);
            PyErr_Clear();
        }
    }
    Py_DECREF(stats);
    return r;
}

/* The memo's key (the frame up to the end of the channel's name) as a bytes object: the one made
 * for the same bytes before when it is still in its slot (its hash then computed once), else a
 * new one that takes the slot (when its channel's name is at most JSON_CACHE_MAX bytes: the
 * key is the fixed prefix and that name; a longer one is not kept). Which equal bytes object a
 * dict lookup is given does not show. */
#define KEY_CACHE 512
static PyObject *keys[KEY_CACHE];
static PyObject *key_of(const char *p, Py_ssize_t n) {
    if (n - PREFIX_LEN > JSON_CACHE_MAX) return PyBytes_FromStringAndSize(p, n); /* not kept (_json.h) */
    PyObject **slot = &keys[json_hash((Ptr)p + PREFIX_LEN, n - PREFIX_LEN) & (KEY_CACHE - 1)];
    PyObject *o = *slot;
    if (o != NULL && PyBytes_GET_SIZE(o) == n && memcmp(PyBytes_AS_STRING(o), p, (size_t)n) == 0)
        return Py_NewRef(o);
    PyObject *b = PyBytes_FromStringAndSize(p, n);
    if (b == NULL) return NULL;
    Py_XSETREF(*slot, Py_NewRef(b)); /* a bytes' release runs no code */
    return b;
}

static PyObject *fast_decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decode(decoder, frame, ts_local)");
        return NULL;
    }
    if (py_decode == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fast.setup_decode() was not called");
        return NULL;
    }
    PyObject *decoder = args[0], *frame = args[1];
    PyObject *memo = NULL, *key = NULL, *route = NULL, *whole = NULL, *events = NULL;
    if (!PyBytes_CheckExact(frame)) goto python;
    const char *p = PyBytes_AS_STRING(frame);
    Py_ssize_t n = PyBytes_GET_SIZE(frame);
    /* The frame's lines asked of memory now, while the route is looked up: a frame read from a
     * long list of them is not in the cache, and its function reads it to its last byte. */
    for (Py_ssize_t off = 64; off < n; off += 64) JSON_PREFETCH(p + off);
    if (n > 0) JSON_PREFETCH(p + n - 1);
    if (n <= PREFIX_LEN || memcmp(p, PREFIX, (size_t)PREFIX_LEN) != 0) goto python;
    const char *q = memchr(p + PREFIX_LEN, '"', (size_t)(n - PREFIX_LEN));
    if (q == NULL) goto python;
    memo = decoder_attr(decoder, s__fast);
    if (memo == NULL) goto error;
    if (!PyDict_CheckExact(memo)) goto python;
    key = key_of(p, q - p);
    if (key == NULL) goto error; /* no memory: the Python path meets it too, and says so its way */
    route = PyDict_GetItemWithError(memo, key); /* borrowed; an exact bytes key runs no code */
    if (route == NULL) {
        if (PyErr_Occurred()) goto error;
        goto python; /* not seen yet: `decode` routes it and remembers */
    }
    if (!PyTuple_CheckExact(route) || PyTuple_GET_SIZE(route) != 4) goto python;
    whole = Py_NewRef(PyTuple_GET_ITEM(route, 3));
    route = NULL;
    if (whole == Py_None) goto python;
    events = PyObject_Vectorcall(whole, args, 3, NULL);
    if (events == NULL) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        if (value == NULL) goto fail; /* cannot happen: a raised exception has a value */
        PyObject *raised = PyObject_CallFunctionObjArgs(py_raised, decoder, frame, value, NULL);
        Py_DECREF(value);
        if (raised != NULL) { /* it always raises */
            Py_DECREF(raised);
            PyErr_SetString(PyExc_SystemError, "_whole_raised returned");
        }
        goto fail;
    }
    if (events == Py_None) {
        Py_CLEAR(events);
        goto python;
    }
    /* Counted in the stats' slots when it can be; else (a result that is not a list, which no
     * function returns, stats that are not plain ints in plain slots) decode's counting in
     * Python, behind its guard: a count that fails is the guarded decode's fault. */
    int done = PyList_CheckExact(events) ? counted(decoder, PyList_GET_SIZE(events)) : 0;
    if (done < 0) goto fail;
    if (done == 0) {
        PyObject *counted = PyObject_CallFunctionObjArgs(py_returned, decoder, frame, events, NULL);
        Py_SETREF(events, counted);
        if (events == NULL) goto fail;
    }
    Py_DECREF(memo);
    Py_DECREF(key);
    Py_DECREF(whole);
    return events;
error:
    if (!python_after_error()) goto fail;
python:
    Py_XDECREF(memo);
    Py_XDECREF(key);
    Py_XDECREF(whole);
    return PyObject_Vectorcall(py_decode, args, 3, NULL);
fail:
    Py_XDECREF(memo);
    Py_XDECREF(key);
    Py_XDECREF(whole);
    Py_XDECREF(events);
    return NULL;
}

static PyObject *fast_setup_decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyCallable_Check(args[0]) || !PyCallable_Check(args[1]) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "setup_decode(decode, whole_raised, whole_returned): three callables");
        return NULL;
    }
    Py_XSETREF(py_decode, Py_NewRef(args[0]));
    Py_XSETREF(py_raised, Py_NewRef(args[1]));
    Py_XSETREF(py_returned, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

/* `DeribitDecoder.decode` itself (`method`: codec.py sets it on the class): the C entry (`decode`,
 * above) for a decoder whose `compiled` is true, the guarded Python decode (`setup_decode`'s) for
 * any other, chosen at each call from the decoder's `compiled` as it is then. A method of the
 * class as a C type's methods are (PyDescr_NewMethod: Python's own method descriptor, no type of
 * ours), so a call written `decoder.decode(frame, ts_local)` is made by the interpreter with no
 * bound method: LOAD_METHOD finds a method descriptor (Py_TPFLAGS_METHOD_DESCRIPTOR) and 3.11's
 * specialised call of one calls this function with the decoder and the arguments as they lie on
 * its stack. That costs what a bound method looked up once costs (a whole frame's decode within
 * 1% of it; a descriptor type of our own, which the interpreter calls only through its generic
 * call, was 1.5 to 2.4% slower), so no caller hoists the lookup. It holds only the class (no
 * decoder refers to itself through it: tests/venue/test_decoder_freed.py). Looked up as an
 * attribute (`d = decoder.decode`) it is a bound builtin method that calls it. It takes the
 * calls the Python decode takes, `(frame, ts_local)` positional or by name, on either decoder:
 * a compiled one's are bound here as Python binds them and run the C entry (`bind_args`); any
 * call they do not bind (a name missing, repeated or unknown, too many) goes to the Python
 * decode, whose own binding refuses it with Python's TypeError before its body runs (nothing
 * counted), so both decoders refuse the same calls in the same words. A subclass's `decode`, or
 * one set on the class or on an instance, is found before it, as any method's.
 * tests/venue/test_decode_lookup.py. */
static PyObject *s_frame, *s_ts_local; /* the Python decode's parameters' names */

/* 1 when `name` is the parameter name `param` (an exact str: the comparison runs no code). */
static int is_param(PyObject *name, PyObject *param) {
    return name == param || (PyUnicode_CheckExact(name) && PyUnicode_Compare(name, param) == 0);
}

/* `(frame, ts_local)` bound from a call's positional `args` (nargs) and keywords (`kwnames`,
 * their values after the positional ones) as Python binds the Python decode's parameters: 1
 * with out[0] the frame and out[1] ts_local (borrowed), 0 when the call does not bind (a
 * parameter missing or given twice, an unknown name, a third positional), nothing raised. */
static int bind_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **out) {
    out[0] = out[1] = NULL;
    if (nargs > 2) return 0;
    for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t j = 0; j < nkw; j++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, j);
        int k = is_param(name, s_frame) ? 0 : is_param(name, s_ts_local) ? 1 : -1;
        if (k < 0 || out[k] != NULL) return 0;
        out[k] = args[nargs + j];
    }
    return out[0] != NULL && out[1] != NULL;
}

/* The decoder's `compiled` as a truth value (1, 0), or -1 with an exception. */
static int is_compiled(PyObject *decoder) {
    PyObject *v = decoder_attr(decoder, s_compiled);
    if (v == NULL) return -1;
    int r = v == Py_True ? 1 : v == Py_False ? 0 : PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static PyObject *decode_method(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (py_decode == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fast.setup_decode() was not called");
        return NULL;
    }
    int compiled = is_compiled(self);
    if (compiled < 0) return NULL;
    if (nargs == 2 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0)) {
        PyObject *full[3] = {self, args[0], args[1]};
        return compiled ? fast_decode(NULL, full, 3) : PyObject_Vectorcall(py_decode, full, 3, NULL);
    }
    if (compiled) {
        PyObject *full[3] = {self, NULL, NULL};
        if (bind_args(args, nargs, kwnames, full + 1)) return fast_decode(NULL, full, 3);
    }
    PyObject *bound = PyMethod_New(py_decode, self); /* it binds the call, or refuses it */
    if (bound == NULL) return NULL;
    PyObject *events = PyObject_Vectorcall(bound, args, (size_t)nargs, kwnames);
    Py_DECREF(bound);
    return events;
}

static PyMethodDef decode_method_def = {
    "decode", (PyCFunction)(void (*)(void))decode_method, METH_FASTCALL | METH_KEYWORDS,
    "decode($self, frame, ts_local)\n--\n\n"
    "The events in one raw WebSocket frame (the `Decoder` contract): the C entry on a compiled "
    "decoder, the guarded Python decode on any other (codec.py)."};

static PyObject *fast_method(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "method(cls): a class");
        return NULL;
    }
    return PyDescr_NewMethod((PyTypeObject *)cls, &decode_method_def);
}

static PyObject *fast_setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "setup(namespace, apply, book_events, book_update, venue, ms, "
                                         "book_type, data_type, ticker)");
        return NULL;
    }
    if (!PyType_Check(args[6]) || !PyType_Check(args[7])) {
        PyErr_SetString(PyExc_TypeError, "setup: book_type and data_type must be classes");
        return NULL;
    }
    if (!PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "setup: the namespace must be a dict");
        return NULL;
    }
    for (int i = 1; i < 9; i = i == 3 ? 8 : i + 1) {
        if (!PyCallable_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "setup: apply, book_events, book_update and ticker are callables");
            return NULL;
        }
    }
    if (!PyUnicode_CheckExact(args[4]) || !PyLong_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError, "setup: venue must be a str, ms an int");
        return NULL;
    }
    Py_XSETREF(namespace, Py_NewRef(args[0]));
    Py_XSETREF(py_apply, Py_NewRef(args[1]));
    Py_XSETREF(py_book_events, Py_NewRef(args[2]));
    Py_XSETREF(book_update, Py_NewRef(args[3]));
    Py_XSETREF(venue, Py_NewRef(args[4]));
    Py_XSETREF(ms, Py_NewRef(args[5]));
    Py_XSETREF(ticker, Py_NewRef(args[8]));
    for (int i = 0; i < 2; i++) {
        PyObject *key = PyUnicode_InternFromString(quote_pins[i].name);
        if (key == NULL) return NULL;
        Py_XSETREF(quote_pins[i].key, key);
        PyObject *v = PyDict_GetItemWithError(args[0], key); /* borrowed */
        if (v == NULL) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "setup: the namespace has no %s", quote_pins[i].name);
            return NULL;
        }
        Py_XSETREF(quote_pins[i].value, Py_NewRef(v));
    }
    static PyObject **const book_names[] = {&s_inv, &s_bids, &s_asks, &s_bb,
                                            &s_ba,  &s_int_inv, &s_sequence, &s_valid};
    static PyObject **const data_names[] = {&s_type, &s_prev_change_id, &s_instrument_name, &s_bids,
                                            &s_asks, &s_change_id, &s_timestamp};
    n_book_slots = n_data_slots = 0; /* no direct access while the tables change */
    Py_XSETREF(book_type, (PyTypeObject *)Py_NewRef(args[6]));
    Py_XSETREF(data_type, (PyTypeObject *)Py_NewRef(args[7]));
    for (int i = 0; i < BK_COUNT; i++) book_off[i] = -1; /* no direct access while they change */
    register_slots(args[6], book_names, 8, book_slots, &n_book_slots);
    for (int i = 0; i < BK_COUNT; i++) book_off[i] = member_offset((PyTypeObject *)args[6], *book_attr[i]);
    register_slots(args[7], data_names, 7, data_slots, &n_data_slots);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", (PyCFunction)(void (*)(void))fast_setup, METH_FASTCALL,
     "setup(namespace, apply, book_events, book_update, venue, ms, book_type, data_type, ticker): "
     "codec's globals, the Python reference functions, the BookUpdate builder, the venue's name, "
     "ns per ms, the OrderBook class and the book message struct (their slots read directly), "
     "the Ticker builder."},
    {"apply", (PyCFunction)(void (*)(void))fast_apply, METH_FASTCALL,
     "apply(book, bid_levels, ask_levels) -> (bids, asks): codec._apply, compiled."},
    {"book_events", (PyCFunction)(void (*)(void))fast_book_events, METH_FASTCALL,
     "book_events(decoder, data, ts_local) -> events: DeribitDecoder._book_events, its common "
     "case compiled (the Python method for the others)."},
    {"book_frame", (PyCFunction)(void (*)(void))fast_book_frame, METH_FASTCALL,
     "book_frame(decoder, frame, ts_local) -> events | None: a raw `book.<instrument>.<interval>` "
     "frame's events in the common case, None (nothing changed) for any other (codec._WHOLE_FRAME)."},
    {"quote_frame", (PyCFunction)(void (*)(void))fast_quote_frame, METH_FASTCALL,
     "quote_frame(decoder, frame, ts_local) -> events | None: a raw `quote.<instrument>` frame's "
     "Ticker, None for any frame not of the canonical shape (codec._WHOLE_FRAME)."},
    {"decode", (PyCFunction)(void (*)(void))fast_decode, METH_FASTCALL,
     "decode(decoder, frame, ts_local) -> events: DeribitDecoder.decode with its sniff and route in "
     "C (a canonical notification to its whole-frame function), the guarded Python decode for "
     "every other frame (what a compiled decoder's `decode`, `method`'s, runs)."},
    {"method", (PyCFunction)fast_method, METH_O,
     "method(cls) -> descriptor: `cls.decode`, the C entry on a compiled decoder and the guarded "
     "Python decode on any other (a method descriptor: codec.py sets it on DeribitDecoder)."},
    {"setup_decode", (PyCFunction)(void (*)(void))fast_setup_decode, METH_FASTCALL,
     "setup_decode(decode, whole_raised, whole_returned): the guarded Python decode (every frame "
     "not taken here), codec._whole_raised (a whole-frame function's raise made decode's outcome) "
     "and codec._whole_returned (decode's counting, guarded, of a result that is not a list or of "
     "stats not counted in their slots)."},
    {NULL, NULL, 0, NULL},
};

/* The module released: what it learnt and cached (tables of reused objects, the classes it learnt)
 * let go, each relearnt or refilled on its next use. What `setup`/`setup_decode` were given and
 * the interned names stay: a single-phase module imported again is a copy of this one (its
 * PyInit not run again), which keeps using them. */
static void module_free(void *module) {
    (void)module;
    json_cache_clear(names, NAME_CACHE);
    json_cache_clear(keys, KEY_CACHE);
    json_cache_clear(tick_obj, (size_t)1 << TICK_BITS);
    Py_CLEAR(decoder_class.type);
    decoder_class.version = 0;
    Py_CLEAR(stats_type);
    stats_off[0] = stats_off[1] = -1;
    stats_version = 0;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fast", "The compiled Deribit book path (see codec.py).", -1, methods,
    NULL, NULL, NULL, module_free,
};

#define INTERN(var, text)                                                                          \
    do {                                                                                           \
        var = PyUnicode_InternFromString(text);                                                    \
        if (var == NULL) return NULL;                                                              \
    } while (0)

PyMODINIT_FUNC PyInit__fast(void) {
    json_init();
    INTERN(s__apply, "_apply");
    INTERN(s_clear, "clear");
    INTERN(s_inv, "_inv");
    INTERN(s_bids, "bids");
    INTERN(s_asks, "asks");
    INTERN(s_bb, "_bb");
    INTERN(s_ba, "_ba");
    INTERN(s_int_inv, "_int_inv");
    INTERN(s_sequence, "sequence");
    INTERN(s_valid, "valid");
    INTERN(s_price_of, "price_of");
    INTERN(s_type, "type");
    INTERN(s_prev_change_id, "prev_change_id");
    INTERN(s_change_id, "change_id");
    INTERN(s_instrument_name, "instrument_name");
    INTERN(s_timestamp, "timestamp");
    INTERN(s_books, "_books");
    INTERN(s_change, "change");
    INTERN(s_pop, "pop");
    INTERN(s__crossed, "_crossed");
    INTERN(s__fast, "_fast");
    INTERN(s_stats, "stats");
    INTERN(s_frames, "frames");
    INTERN(s_events, "events");
    INTERN(s_compiled, "compiled");
    INTERN(s_frame, "frame");
    INTERN(s_ts_local, "ts_local");
    decoder_names[0] = s__fast;
    decoder_names[1] = s_books;
    decoder_names[2] = s_stats;
    decoder_names[3] = s_compiled;
    zero = PyFloat_FromDouble(0.0);
    if (zero == NULL) return NULL;
    PyObject *builtins = PyImport_ImportModule("builtins");
    if (builtins == NULL) return NULL;
    py_max = PyObject_GetAttrString(builtins, "max");
    py_min = py_max == NULL ? NULL : PyObject_GetAttrString(builtins, "min");
    Py_DECREF(builtins);
    if (py_min == NULL) return NULL;
    return PyModule_Create(&module_def);
}
