/* The compiled replay loop of the backtest kernel (kernel.py, BacktestKernel._replay; issue 17).
 *
 * `loop(kernel, frames, consts, state)` takes frames from the iterator `frames` and does, for
 * each common one, what the Python loop of `_replay` does, in the same order, through the same
 * objects and the kernel's own Python methods: the timers due (`_run_timers`), `kernel.now`, the
 * frame counts, the decode call, each event's class dispatch (Ticker -> `market.on_ticker`,
 * BookUpdate / Trade -> the simulated venue's checks (`reach` and `book_reaches` / `resting`)
 * then `on_book` / `on_trade`, the answer scheduled by `_at`; Status kinds -> `_resolve` / `_funding`), the route lookup, the
 * delivery to each routed strategy (`on_event` stepped once, as `next(coro.__await__())`;
 * what it awaits parked by `_park` or refused by `_unsimulated`; what it raises given to
 * `_strategy_error` or `_fault` as the Python `except` clauses do, with that exception being
 * handled meanwhile; the mailbox then), and the unrouted frame bookkeeping.
 *
 * It returns to Python, which stays the reference (`BacktestKernel(..., compiled=False)`), with
 *   (0, item, None, None): a frame not processed at all (not a (ts: int, idx: int, frame) tuple
 *       this loop takes: a bare frame, a strange item); Python processes it as any frame.
 *   (1, ts, idx, exc): the decoder raised the `MalformedFrame` exc (the frame counted, as in
 *       Python before the decode call); Python counts and logs it.
 *   (2, ts, idx, None): the frame processed, and a sample, the checkpoint or an expiry is due:
 *       Python does the frame's tail.
 *   None: the iterator ended.
 * `state` is a list [frames, events_count, next_sample, next_expiry], read on entry; the first
 * two are written back on every return (an exception too).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <math.h>
#include <stdint.h>
#include <structmember.h>

#include "../_typecache.h" /* a class's version tag and its attributes' lookup */

static PyObject *s_now, *s_venue, *s_instrument, *s_kind, *s_status, *s_resting, *s_reach, *s_books,
    *s_book_reaches, *s_bb, *s_ba, *s_valid, *s_inv, *s_snapshot, *s_bids, *s_asks, *s_tickers, *s_rate_key,
    *s_index, *s_gi_yieldfrom, *s_on_book,
    *s_on_trade, *s_received, *s_coro, *s_phase, *s_failure, *s_strategy, *s_on_event, *s_waiting,
    *s_mailbox, *s_get_nowait, *s_get, *s_on_event_text, *s_await;
static PyObject *code_frame, *code_malformed, *code_post, *_one;

enum {
    C_DECODERS,
    C_VENUE_OF,
    C_SIMS,
    C_ROUTES,
    C_ROUTE,
    C_ON_TICKER,
    C_DELIVER,
    C_TIMERS,
    C_FRAMES_BY,
    C_UNROUTED_BY,
    C_FILL_USED_BY,
    C_BOOK_FRAMES_BY,
    C_BOOK_FRAME_BY,
    C_NO_EVENT,
    C_RESP,
    C_AT,
    C_APPLY,
    C_RUN_TIMERS,
    C_STRATEGY_ERROR,
    C_FAULT,
    C_PARK,
    C_UNSIMULATED,
    C_DRIVE,
    C_RESOLVE,
    C_FUNDING,
    C_TICKER,
    C_BOOK_UPDATE,
    C_TRADE,
    C_STATUS,
    C_RESOLVED,
    C_FUNDING_KIND,
    C_WAIT,
    C_MALFORMED,
    C_MASK,
    C_ORDER_BOOK,
    C_MARKET,
    C_SLOT_TYPE,
    C_COUNT
};

#define K(i) PyTuple_GET_ITEM(consts, i)

/* `set(obj, key, old + 1)` (`old += 1` when `inplace`), the increment's one code: steals `old`
 * (NULL: the error of the lookup that gave it, passed on). 0, or -1 on an error. */
static int set_plus_one(int (*set)(PyObject *, PyObject *, PyObject *), PyObject *obj, PyObject *key,
                        PyObject *old, int inplace) {
    if (old == NULL)
        return -1;
    PyObject *new = inplace ? PyNumber_InPlaceAdd(old, _one) : PyNumber_Add(old, _one);
    Py_DECREF(old);
    if (new == NULL)
        return -1;
    int r = set(obj, key, new);
    Py_DECREF(new);
    return r;
}

/* container[key] += 1, as Python does it for a list item or a dict value (`d.get(k, 0) + 1`). */
static int bump_item(PyObject *container, PyObject *key) {
    if (PyList_CheckExact(container) && PyLong_CheckExact(key)) {
        Py_ssize_t i = PyLong_AsSsize_t(key);
        if (i == -1 && PyErr_Occurred())
            PyErr_Clear(); /* the generic route below raises what Python raises */
        else if (i >= 0 && i < PyList_GET_SIZE(container)) {
            PyObject *old = PyList_GET_ITEM(container, i);
            if (PyLong_CheckExact(old)) {
                PyObject *new = PyNumber_Add(old, _one);
                if (new == NULL)
                    return -1;
                PyList_SetItem(container, i, new); /* steals new, drops old; cannot fail here */
                return 0;
            }
        }
    }
    return set_plus_one(PyObject_SetItem, container, key, PyObject_GetItem(container, key), 1);
}

/* Python's `counts[key] = counts.get(key, 0) + 1`. */
static int bump_get(PyObject *counts, PyObject *key) {
    if (PyDict_CheckExact(counts)) { /* dict.get itself, without the method call */
        PyObject *old = PyDict_GetItemWithError(counts, key); /* borrowed */
        if (old == NULL && PyErr_Occurred())
            return -1;
        PyObject *new = old == NULL ? (Py_INCREF(_one), _one) : PyNumber_Add(old, _one);
        if (new == NULL)
            return -1;
        int r = PyDict_SetItem(counts, key, new);
        Py_DECREF(new);
        return r;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL)
        return -1;
    PyObject *old = PyObject_CallMethodObjArgs(counts, s_get, key, zero, NULL);
    Py_DECREF(zero);
    return set_plus_one(PyObject_SetItem, counts, key, old, 0);
}

/* `mapping.get(key)` truthy: 1, 0, or -1 on an error. */
static int get_truthy(PyObject *mapping, PyObject *key) {
    PyObject *v;
    if (PyDict_CheckExact(mapping)) {
        v = PyDict_GetItemWithError(mapping, key); /* borrowed */
        if (v == NULL)
            return PyErr_Occurred() ? -1 : 0;
        Py_INCREF(v);
    } else {
        v = PyObject_CallMethodOneArg(mapping, s_get, key);
        if (v == NULL)
            return -1;
    }
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

/* The type's version tag, which changes whenever an attribute of it or of a base is set or
 * deleted; 0 when it has none valid (then the offsets are read again each time they are used). */
static unsigned int type_tag(PyObject *type) { return tc_version((PyTypeObject *)type); }

/* Whether the offsets cached for `type` as `cached`, at version `tag`, still hold. */
#define FRESH(type, cached, tag) ((type) == (cached) && (tag) != 0 && type_tag(type) == (tag))

/* The slots of `OrderBook` the book check reads (`_bb`, `_ba`, `valid`, `_inv`): their offsets in
 * the type `book_type` (set by `book_offsets`, read again when the type's version tag changed: a
 * class attribute replaced, e.g. a property set over a slot's name); -1 where not a plain slot. */
static PyObject *book_type = NULL;
static unsigned int book_tag = 0;
static Py_ssize_t off_bb = -1, off_ba = -1, off_valid = -1, off_inv = -1;

/* The offset of the member `name` in instances of `type`: an object slot (a writable one when
 * `writable`), the descriptor found being a member descriptor of `type` or of a base (not one of
 * another class set on it); else -1. */
static Py_ssize_t member_offset(PyObject *type, PyObject *name, int writable) {
    PyObject *desc = tc_lookup((PyTypeObject *)type, name); /* borrowed */
    if (desc == NULL || !Py_IS_TYPE(desc, &PyMemberDescr_Type) ||
        !PyType_IsSubtype((PyTypeObject *)type, PyDescr_TYPE(desc)))
        return -1;
    PyMemberDef *m = ((PyMemberDescrObject *)desc)->d_member;
    return m->type == T_OBJECT_EX && !(writable && (m->flags & READONLY)) ? m->offset : -1;
}

/* A writable object slot's offset (what the loop writes), or -1. */
static Py_ssize_t slot_offset(PyObject *type, PyObject *name) { return member_offset(type, name, 1); }

static void book_offsets(PyObject *type) {
    if (FRESH(type, book_type, book_tag))
        return;
    Py_XSETREF(book_type, PyType_Check(type) ? Py_NewRef(type) : NULL);
    off_bb = off_ba = off_valid = off_inv = -1;
    book_tag = 0;
    if (book_type == NULL)
        return;
    off_bb = slot_offset(type, s_bb);
    off_ba = slot_offset(type, s_ba);
    off_valid = slot_offset(type, s_valid);
    off_inv = slot_offset(type, s_inv);
    book_tag = type_tag(type); /* after the lookups, which give the type a tag */
}

/* A slot of `obj` at offset `off` (from `slot_offset` of its exact type), borrowed; NULL when unset. */
#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* The consumed keys (side, ticks) a check compares levels with, as C integers (at most 8). */
#define MAX_USED 8
typedef struct {
    long side;
    long long ticks;
} UsedKey;

/* Python's `round(x)` of a double as a C integer, in `*out`: 0, or -1 when out of range or NaN. */
static int round_ticks(double x, long long *out) {
    double r = round(x);
    if (fabs(x - r) == 0.5)
        r = 2.0 * round(x / 2.0);
    if (!(r > -4e18 && r < 4e18))
        return -1;
    *out = (long long)r;
    return 0;
}

/* Whether `levels` (an update's side `side`) sets a level among `keys`: 1, 0, or -1 when not in
 * the shape this reads (a tuple of (float, float) tuples), no exception set. */
static int touches(PyObject *levels, long side, double inv, const UsedKey *keys, int n) {
    if (!PyTuple_CheckExact(levels))
        return -1;
    int any = 0;
    for (int k = 0; k < n; k++)
        any |= keys[k].side == side;
    if (!any)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(levels); i++) {
        PyObject *lvl = PyTuple_GET_ITEM(levels, i);
        if (!PyTuple_CheckExact(lvl) || PyTuple_GET_SIZE(lvl) != 2 || !PyFloat_CheckExact(PyTuple_GET_ITEM(lvl, 0)))
            return -1;
        long long t;
        if (round_ticks(PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(lvl, 0)) * inv, &t) < 0)
            return -1;
        for (int k = 0; k < n; k++)
            if (keys[k].side == side && keys[k].ticks == t)
                return 1;
    }
    return 0;
}

/* `book_reaches` below on an exact `OrderBook` in its usual shape, for the entry `entry` (a
 * 3-tuple): 1, 0, -1 on an error, or -2 when something is not in the shape read here (no
 * exception set: the method decides). */
static int book_reaches_fast(PyObject *sim, PyObject *ev, PyObject *inst, PyObject *entry) {
    if (book_type == NULL)
        return -2;
    book_offsets(book_type);
    if (off_bb < 0 || off_ba < 0 || off_valid < 0 || off_inv < 0)
        return -2;
    PyObject *buy = PyTuple_GET_ITEM(entry, 0), *sell = PyTuple_GET_ITEM(entry, 1), *used = PyTuple_GET_ITEM(entry, 2);
    if ((buy != Py_None && !PyLong_CheckExact(buy)) || (sell != Py_None && !PyLong_CheckExact(sell)) ||
        (used != Py_None && !PyDict_CheckExact(used)))
        return -2;
    UsedKey keys[MAX_USED];
    int n = 0;
    if (used != Py_None && PyDict_GET_SIZE(used) > 0) {
        if (PyDict_GET_SIZE(used) > MAX_USED)
            return -2;
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(used, &pos, &key, &value)) {
            if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2 || !PyLong_CheckExact(PyTuple_GET_ITEM(key, 0)) ||
                !PyLong_CheckExact(PyTuple_GET_ITEM(key, 1)))
                return -2;
            int overflow;
            long side = PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(key, 0), &overflow);
            if (overflow || (side != 0 && side != 1))
                return -2;
            long long t = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(key, 1), &overflow);
            if (overflow || t <= -4000000000000000000LL || t >= 4000000000000000000LL)
                return -2;
            keys[n].side = side;
            keys[n].ticks = t;
            n++;
        }
    }
    PyObject *books = PyObject_GetAttr(sim, s_books);
    if (books == NULL)
        return -1;
    PyObject *book = PyObject_CallOneArg(books, inst);
    Py_DECREF(books);
    if (book == NULL)
        return -1;
    int r = -2;
    PyObject *bb = NULL, *ba = NULL, *valid = NULL, *inv = NULL;
    if (book == Py_None) { /* no book: `on_book` neither forgets nor fills */
        r = 0;
        goto done;
    }
    if ((PyObject *)Py_TYPE(book) != book_type)
        goto done;
    book_offsets(book_type); /* `sim.books(inst)` may have changed the class */
    if (off_bb < 0 || off_ba < 0 || off_valid < 0 || off_inv < 0)
        goto done;
    /* strong references: the event's attributes read below may run code (a property of an event
     * of another class) that sets the book's slots, dropping the values read here */
    bb = Py_XNewRef(SLOT(book, off_bb));
    ba = Py_XNewRef(SLOT(book, off_ba));
    valid = Py_XNewRef(SLOT(book, off_valid));
    inv = Py_XNewRef(SLOT(book, off_inv));
    if (bb == NULL || ba == NULL || (valid != Py_True && valid != Py_False) || inv == NULL ||
        !PyFloat_CheckExact(inv) || (bb != Py_None && !PyLong_CheckExact(bb)) || (ba != Py_None && !PyLong_CheckExact(ba)))
        goto done;
    if (n > 0) { /* a snapshot, or a level the update sets that a fill consumed */
        PyObject *snapshot = PyObject_GetAttr(ev, s_snapshot);
        if (snapshot == NULL) {
            r = -1;
            goto done;
        }
        int t = PyObject_IsTrue(snapshot);
        Py_DECREF(snapshot);
        if (t != 0) {
            r = t;
            goto done;
        }
        for (long side = 0; side < 2; side++) {
            PyObject *levels = PyObject_GetAttr(ev, side ? s_asks : s_bids);
            if (levels == NULL) {
                r = -1;
                goto done;
            }
            t = touches(levels, side, PyFloat_AS_DOUBLE(inv), keys, n);
            Py_DECREF(levels);
            if (t != 0) {
                r = t < 0 ? -2 : 1;
                goto done;
            }
        }
    }
    r = 0;
    if (valid == Py_True) { /* ask <= buy or bid >= sell */
        if (buy != Py_None && ba != Py_None)
            r = PyObject_RichCompareBool(ba, buy, Py_LE);
        if (r == 0 && sell != Py_None && bb != Py_None)
            r = PyObject_RichCompareBool(bb, sell, Py_GE);
    }
done:
    Py_XDECREF(bb);
    Py_XDECREF(ba);
    Py_XDECREF(valid);
    Py_XDECREF(inv);
    Py_DECREF(book);
    return r;
}

/* `sim.book_reaches(ev)` (simvenue.py) for an instrument in `sim.reach`, whose entry is `entry`
 * (borrowed; NULL: not read): 1, 0, or -1 on an error. */
static int book_reaches(PyObject *sim, PyObject *ev, PyObject *inst, PyObject *entry) {
    if (entry == Py_None)
        return 1;
    if (entry != NULL && PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) == 3) {
        int r = book_reaches_fast(sim, ev, inst, entry);
        if (r != -2)
            return r;
    }
    PyObject *args[2] = {sim, ev};
    PyObject *out = PyObject_VectorcallMethod(s_book_reaches, args, 2, NULL);
    if (out == NULL)
        return -1;
    int r = PyObject_IsTrue(out);
    Py_DECREF(out);
    return r;
}

/* `sim = sims[ev.venue]`, then for a book update: `if inst in sim.reach: fill_used = True; if
 * sim.book_reaches(inst): out = sim.on_book(ev, ts)`; for a trade: `if sim.resting.get(inst):
 * fill_used = True; out = sim.on_trade(ev, ts)`; then `if out: kernel._at(ts + resp,
 * kernel._apply, out)`. */
static int venue_side(PyObject *consts, PyObject *ev, PyObject *venue, PyObject *inst, PyObject *ts, int book,
                      int *fill_used) {
    int result = -1;
    PyObject *sim = NULL, *table = NULL, *out = NULL;
    if ((sim = PyObject_GetItem(K(C_SIMS), venue)) == NULL)
        goto done;
    int hit;
    if (book) {
        if ((table = PyObject_GetAttr(sim, s_reach)) == NULL)
            goto done;
        PyObject *entry = NULL;
        if (PyDict_CheckExact(table)) {
            entry = PyDict_GetItemWithError(table, inst); /* borrowed */
            if (entry == NULL && PyErr_Occurred())
                goto done;
            hit = entry != NULL;
        } else if ((hit = PySequence_Contains(table, inst)) < 0) {
            goto done;
        }
        if (hit) {
            *fill_used = 1;
            if (entry != NULL) {
                Py_INCREF(entry); /* the book call below may run any code */
                hit = book_reaches(sim, ev, inst, entry);
                Py_DECREF(entry);
            } else {
                hit = book_reaches(sim, ev, inst, NULL);
            }
            if (hit < 0)
                goto done;
        }
    } else {
        if ((table = PyObject_GetAttr(sim, s_resting)) == NULL)
            goto done;
        if ((hit = get_truthy(table, inst)) < 0)
            goto done;
        if (hit)
            *fill_used = 1;
    }
    if (hit) {
        PyObject *args[3] = {sim, ev, ts};
        out = PyObject_VectorcallMethod(book ? s_on_book : s_on_trade, args, 3,
                                        NULL);
        if (out == NULL)
            goto done;
        int t = PyObject_IsTrue(out);
        if (t < 0)
            goto done;
        if (t) {
            PyObject *when = PyNumber_Add(ts, K(C_RESP));
            if (when == NULL)
                goto done;
            PyObject *r = PyObject_CallFunctionObjArgs(K(C_AT), when, K(C_APPLY), out, NULL);
            Py_DECREF(when);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
    }
    result = 0;
done:
    Py_XDECREF(sim);
    Py_XDECREF(table);
    Py_XDECREF(out);
    return result;
}

/* The exception set, fetched as an `except ... as exc` clause sees it: normalized, its traceback
 * as raised (no frame of the kernel's added: the kernel logs a strategy's frames only). */
static PyObject *caught(void) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value == NULL) { /* cannot happen after a normalization that succeeded */
        Py_XDECREF(type);
        Py_XDECREF(tb);
        PyErr_SetString(PyExc_SystemError, "_kernel: an exception without a value");
        return NULL;
    }
    if (tb != NULL && PyException_SetTraceback(value, tb) < 0) {
        Py_XDECREF(type);
        Py_DECREF(value);
        Py_DECREF(tb);
        return NULL;
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* `handler(slot, exc)` while `exc` is the exception being handled (as inside `except`). */
static int handle(PyObject *handler, PyObject *slot, PyObject *exc) {
    PyObject *pt, *pv, *ptb;
    PyErr_GetExcInfo(&pt, &pv, &ptb);
    Py_INCREF(exc);
    Py_INCREF(Py_TYPE(exc));
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_SetExcInfo((PyObject *)Py_TYPE(exc), exc, tb); /* steals the three references */
    PyObject *r = PyObject_CallFunctionObjArgs(handler, slot, exc, NULL);
    PyErr_SetExcInfo(pt, pv, ptb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The strategy slots' attributes the delivery reads and writes (`_Slot`, kernel.py: `__slots__`
 * members), by their offsets in the exact type `slot_type` (set by `slot_offsets`, read again
 * when the type's version tag changed); another type, an unset member or a name not a member
 * goes through the attribute protocol. */
static PyObject *slot_type = NULL;
static unsigned int slot_tag = 0;
enum { SL_RECEIVED, SL_CORO, SL_PHASE, SL_FAILURE, SL_STRATEGY, SL_WAITING, SL_MAILBOX, SL_COUNT };
static Py_ssize_t slot_offs[SL_COUNT];
static PyObject **slot_names[SL_COUNT] = {&s_received, &s_coro,     &s_phase,  &s_failure,
                                          &s_strategy, &s_waiting, &s_mailbox};

static void slot_offsets(PyObject *type) {
    if (FRESH(type, slot_type, slot_tag))
        return;
    Py_XSETREF(slot_type, PyType_Check(type) ? Py_NewRef(type) : NULL);
    for (int i = 0; i < SL_COUNT; i++)
        slot_offs[i] = slot_type == NULL ? -1 : slot_offset(slot_type, *slot_names[i]);
    slot_tag = slot_type == NULL ? 0 : type_tag(slot_type);
}

static Py_ssize_t slot_off(PyObject *slot, PyObject *name) {
    if ((PyObject *)Py_TYPE(slot) != slot_type)
        return -1;
    slot_offsets(slot_type); /* a strategy's code may have changed the class meanwhile */
    for (int i = 0; i < SL_COUNT; i++)
        if (*slot_names[i] == name)
            return slot_offs[i];
    return -1;
}

/* `slot.<name>`: a new reference, or NULL with the exception. */
static PyObject *slot_get(PyObject *slot, PyObject *name) {
    Py_ssize_t off = slot_off(slot, name);
    if (off >= 0) {
        PyObject *v = SLOT(slot, off);
        if (v != NULL)
            return Py_NewRef(v);
    }
    return PyObject_GetAttr(slot, name);
}

/* `slot.<name> = v`: 0, or -1 with the exception. */
static int slot_set(PyObject *slot, PyObject *name, PyObject *v) {
    Py_ssize_t off = slot_off(slot, name);
    if (off < 0)
        return PyObject_SetAttr(slot, name, v);
    PyObject *old = SLOT(slot, off);
    SLOT(slot, off) = Py_NewRef(v);
    Py_XDECREF(old);
    return 0;
}

/* One routed strategy and event: the Python loop's inline delivery. 0, or -1 on an error. */
static int deliver_one(PyObject *consts, PyObject *slot, PyObject *ev) {
    int result = -1;
    PyObject *v = NULL, *coro = NULL, *awaited = NULL, *strategy = NULL;
    /* slot.received += 1 */
    int r = set_plus_one(slot_set, slot, s_received, slot_get(slot, s_received), 1);
    if (r < 0)
        return -1;
    /* `slot.coro is not None or slot.phase != "on_event" or slot.failure is not None` */
    int busy;
    if ((v = slot_get(slot, s_coro)) == NULL)
        goto done;
    busy = v != Py_None;
    Py_CLEAR(v);
    if (!busy) {
        if ((v = slot_get(slot, s_phase)) == NULL)
            goto done;
        if ((busy = PyObject_RichCompareBool(v, s_on_event_text, Py_NE)) < 0)
            goto done;
        Py_CLEAR(v);
    }
    if (!busy) {
        if ((v = slot_get(slot, s_failure)) == NULL)
            goto done;
        busy = v != Py_None;
        Py_CLEAR(v);
    }
    if (busy) {
        PyObject *x = PyObject_CallFunctionObjArgs(K(C_DELIVER), slot, ev, NULL);
        if (x == NULL)
            goto done;
        Py_DECREF(x);
        result = 0;
        goto done;
    }
    if ((strategy = slot_get(slot, s_strategy)) == NULL)
        goto done;
    if ((coro = PyObject_CallMethodOneArg(strategy, s_on_event, ev)) == NULL)
        goto done;
    Py_CLEAR(strategy);
    /* awaited = next(coro.__await__(), _FINISHED) */
    int finished = 0, raised = 0;
    if (PyCoro_CheckExact(coro)) {
        PySendResult sr = PyIter_Send(coro, Py_None, &awaited);
        if (sr == PYGEN_RETURN) {
            Py_CLEAR(awaited);
            finished = 1;
        } else if (sr == PYGEN_ERROR) {
            awaited = NULL;
            raised = 1;
        }
    } else {
        PyObject *it = PyObject_CallMethodNoArgs(coro, s_await);
        if (it == NULL) {
            raised = 1;
        } else if (!PyIter_Check(it)) {
            PyErr_Format(PyExc_TypeError, "'%.200s' object is not an iterator", Py_TYPE(it)->tp_name);
            Py_DECREF(it);
            raised = 1;
        } else {
            awaited = (*Py_TYPE(it)->tp_iternext)(it);
            Py_DECREF(it);
            if (awaited == NULL) {
                if (PyErr_Occurred()) {
                    if (PyErr_ExceptionMatches(PyExc_StopIteration))
                        PyErr_Clear(), finished = 1;
                    else
                        raised = 1;
                } else {
                    finished = 1;
                }
            }
        }
    }
    if (raised) {
        int ordinary = PyErr_ExceptionMatches(PyExc_Exception);
        PyObject *exc = caught();
        if (exc == NULL)
            goto done;
        r = handle(K(ordinary ? C_STRATEGY_ERROR : C_FAULT), slot, exc);
        Py_DECREF(exc);
        if (r < 0)
            goto done;
        if (!ordinary) {
            result = 0;
            goto done;
        }
    } else if (!finished) {
        if ((PyObject *)Py_TYPE(awaited) == K(C_WAIT)) {
            if (slot_set(slot, s_coro, coro) < 0)
                goto done;
            PyObject *x = PyObject_CallFunctionObjArgs(K(C_PARK), slot, awaited, NULL);
            if (x == NULL)
                goto done;
            Py_DECREF(x);
            result = 0;
            goto done;
        }
        PyObject *x = PyObject_CallFunctionObjArgs(K(C_UNSIMULATED), slot, coro, awaited, NULL);
        if (x == NULL)
            goto done;
        Py_DECREF(x);
    }
    /* if slot.waiting: waiting = slot.mailbox.get_nowait(); if waiting is not None: drive */
    if ((v = slot_get(slot, s_waiting)) == NULL)
        goto done;
    int waiting = PyObject_IsTrue(v);
    Py_CLEAR(v);
    if (waiting < 0)
        goto done;
    if (waiting) {
        PyObject *mailbox = slot_get(slot, s_mailbox);
        if (mailbox == NULL)
            goto done;
        v = PyObject_CallMethodNoArgs(mailbox, s_get_nowait);
        Py_DECREF(mailbox);
        if (v == NULL)
            goto done;
        if (v != Py_None) {
            if ((strategy = slot_get(slot, s_strategy)) == NULL)
                goto done;
            PyObject *c2 = PyObject_CallMethodOneArg(strategy, s_on_event, v);
            if (c2 == NULL)
                goto done;
            PyObject *x = PyObject_CallFunctionObjArgs(K(C_DRIVE), slot, c2, Py_None, Py_None, NULL);
            Py_DECREF(c2);
            if (x == NULL)
                goto done;
            Py_DECREF(x);
        }
    }
    result = 0;
done:
    Py_XDECREF(v);
    Py_XDECREF(coro);
    Py_XDECREF(awaited);
    Py_XDECREF(strategy);
    return result;
}

/* The slots of `MarketState` the ticker path reads (`tickers`, `_rate_key`, `index`): their
 * offsets in `market_type` (set by `market_offsets`, read again when the type's version tag
 * changed); -1 where not a slot. */
static PyObject *market_type = NULL;
static unsigned int market_tag = 0;
static Py_ssize_t off_tickers = -1, off_rate_key = -1, off_index = -1;

static void market_offsets(PyObject *market) {
    PyObject *type = market == Py_None ? NULL : (PyObject *)Py_TYPE(market);
    if (type == NULL ? market_type == NULL : FRESH(type, market_type, market_tag))
        return;
    Py_XSETREF(market_type, Py_XNewRef(type));
    off_tickers = off_rate_key = off_index = -1;
    market_tag = 0;
    if (type == NULL)
        return;
    off_tickers = slot_offset(type, s_tickers);
    off_rate_key = slot_offset(type, s_rate_key);
    off_index = slot_offset(type, s_index);
    market_tag = type_tag(type);
}

/* `market.on_ticker(ev)` (market.py) where its outcome is plain: the ticker kept, and the index
 * price (None, or a float for a currency whose rate is known and usable already) stored, no
 * listener to tell. Anything else (the instrument's rate key not known yet, a first or unusable
 * rate before, an index of another type, a market of another class: `market` None) is the
 * method's, `method` (the market's bound `on_ticker`). 0, or -1 on an error. */
static int on_ticker(PyObject *market, PyObject *method, PyObject *ev) {
    PyObject *venue = NULL, *inst = NULL, *index = NULL, *key = NULL;
    PyObject *tickers = NULL, *rate_keys = NULL, *rates = NULL, *rate_key = NULL;
    int r; /* 0: done here, 1: the method is called, -1: an error */
    if (market == Py_None || (PyObject *)Py_TYPE(market) != market_type)
        goto call;
    market_offsets(market); /* the class may have changed since the offsets were read */
    if (off_tickers < 0 || off_rate_key < 0 || off_index < 0)
        goto call;
    /* the event's attributes first: reading them may run code (a property of an event of another
     * class) that sets the market's slots; the slots' values are then held by strong references
     * (a key's hash or comparison below may run code too) */
    if ((venue = PyObject_GetAttr(ev, s_venue)) == NULL || (inst = PyObject_GetAttr(ev, s_instrument)) == NULL ||
        (index = PyObject_GetAttr(ev, s_index)) == NULL)
        goto error;
    if (index != Py_None && !PyFloat_CheckExact(index))
        goto call;
    /* that code may also have made another call learn another class's offsets: learnt again */
    market_offsets(market);
    if ((PyObject *)Py_TYPE(market) != market_type || off_tickers < 0 || off_rate_key < 0 || off_index < 0)
        goto call;
    tickers = Py_XNewRef(SLOT(market, off_tickers));
    rate_keys = Py_XNewRef(SLOT(market, off_rate_key));
    rates = Py_XNewRef(SLOT(market, off_index));
    if (tickers == NULL || rate_keys == NULL || rates == NULL || !PyDict_CheckExact(tickers) ||
        !PyDict_CheckExact(rate_keys) || !PyDict_CheckExact(rates))
        goto call;
    if ((key = PyTuple_Pack(2, venue, inst)) == NULL)
        goto error;
    if (index != Py_None) {
        rate_key = Py_XNewRef(PyDict_GetItemWithError(rate_keys, key));
        if (rate_key == NULL) {
            if (PyErr_Occurred())
                goto error;
            goto call;
        }
        PyObject *prev = PyDict_GetItemWithError(rates, rate_key); /* borrowed: only its value read */
        if (prev == NULL) {
            if (PyErr_Occurred())
                goto error;
            goto call;
        }
        /* usable before (0 < prev < inf): no first rate now, whatever the new one */
        if (!PyFloat_CheckExact(prev) || !(PyFloat_AS_DOUBLE(prev) > 0 && PyFloat_AS_DOUBLE(prev) < INFINITY))
            goto call;
    }
    r = PyDict_SetItem(tickers, key, ev);
    if (r == 0 && rate_key != NULL)
        r = PyDict_SetItem(rates, rate_key, index);
    goto done;
call:
    r = 1;
    goto done;
error:
    r = -1;
done:
    Py_XDECREF(venue);
    Py_XDECREF(inst);
    Py_XDECREF(index);
    Py_XDECREF(key);
    Py_XDECREF(tickers);
    Py_XDECREF(rate_keys);
    Py_XDECREF(rates);
    Py_XDECREF(rate_key);
    if (r != 1)
        return r;
    PyObject *out = PyObject_CallOneArg(method, ev);
    if (out == NULL)
        return -1;
    Py_DECREF(out);
    return 0;
}

/* What the dispatch reads of an event of the three market classes (`venue`, `instrument`: fields,
 * at their offsets; `kind`: a class attribute, the class's own object), learnt for each class by
 * `ev_learn` and again when its version tag changed, as the generic attribute lookup finds them:
 * the class's `__getattribute__` the generic one, no instance dict, a field a member descriptor
 * of the class or a base, `kind` no descriptor (checked again where it is used: its own class's
 * tag is not the event class's). Anything else (-1, NULL) is read by attribute. */
enum { EV_VENUE, EV_INSTRUMENT, EV_N };
typedef struct {
    PyObject *type; /* held while a loop runs (`forget_classes`) */
    unsigned int tag;
    Py_ssize_t off[EV_N];
    PyObject *kind; /* borrowed: the class's, valid while the tag holds */
} EvClass;
static EvClass ev_classes[3]; /* Ticker, BookUpdate, Trade (C_TICKER + i) */

/* The offset of the field `name` of `type` for reading (an object slot, read-only or not), or -1. */
static Py_ssize_t field_offset(PyObject *type, PyObject *name) { return member_offset(type, name, 0); }

/* The entry of `cls` (one of the three classes, `i` its place), fresh. */
static EvClass *ev_learn(PyObject *cls, int i) {
    EvClass *c = &ev_classes[i];
    if (FRESH(cls, c->type, c->tag))
        return c;
    Py_XSETREF(c->type, Py_NewRef(cls));
    PyTypeObject *t = (PyTypeObject *)cls;
    int generic = t->tp_getattro == PyObject_GenericGetAttr && t->tp_dictoffset == 0;
#ifdef Py_TPFLAGS_MANAGED_DICT
    generic = generic && !PyType_HasFeature(t, Py_TPFLAGS_MANAGED_DICT);
#endif
    c->off[EV_VENUE] = generic ? field_offset(cls, s_venue) : -1;
    c->off[EV_INSTRUMENT] = generic ? field_offset(cls, s_instrument) : -1;
    PyObject *kind = generic ? tc_lookup(t, s_kind) : NULL; /* borrowed */
    c->kind = kind != NULL && Py_TYPE(kind)->tp_descr_get == NULL ? kind : NULL;
    c->tag = type_tag(cls); /* after the lookups, which give the class a tag */
    return c;
}

/* `ev.<venue or instrument>` (`i`: EV_*) of an event of the class of `c` (NULL: by attribute). */
static PyObject *ev_get(PyObject *ev, EvClass *c, int i) {
    if (c != NULL) {
        c = ev_learn((PyObject *)Py_TYPE(ev), (int)(c - ev_classes)); /* code run since may have changed it */
        if (c->off[i] >= 0) {
            PyObject *v = SLOT(ev, c->off[i]);
            if (v != NULL)
                return Py_NewRef(v);
        }
    }
    return PyObject_GetAttr(ev, i == EV_VENUE ? s_venue : s_instrument);
}

/* One event: the class dispatch, the route, the deliveries. `routed`, `fill_used` set. The events
 * of the three market classes are frozen structs: their venue and instrument are read once. */
static int one_event(PyObject *consts, PyObject *ev, PyObject *ts, int *routed, int *fill_used) {
    PyObject *cls = (PyObject *)Py_TYPE(ev);
    PyObject *venue = NULL, *inst = NULL, *kind = NULL, *slots = NULL;
    int book = cls == K(C_BOOK_UPDATE);
    EvClass *ec = NULL;
    if (cls == K(C_TICKER)) {
        ec = ev_learn(cls, 0);
        if (on_ticker(K(C_MARKET), K(C_ON_TICKER), ev) < 0)
            return -1;
    } else if (book || cls == K(C_TRADE)) {
        ec = ev_learn(cls, book ? 1 : 2);
        if ((venue = ev_get(ev, ec, EV_VENUE)) == NULL)
            goto error;
        if ((inst = ev_get(ev, ec, EV_INSTRUMENT)) == NULL)
            goto error;
        if (venue_side(consts, ev, venue, inst, ts, book, fill_used) < 0)
            goto error;
    } else if (cls == K(C_STATUS)) {
        PyObject *status = PyObject_GetAttr(ev, s_status);
        if (status == NULL)
            return -1;
        PyObject *fn = status == K(C_RESOLVED) ? K(C_RESOLVE) : status == K(C_FUNDING_KIND) ? K(C_FUNDING) : NULL;
        Py_DECREF(status);
        if (fn != NULL) {
            PyObject *r = PyObject_CallOneArg(fn, ev);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
        }
    }
    if (ec != NULL) /* the class may have changed meanwhile (code the venue or the market ran) */
        ec = ev_learn(cls, (int)(ec - ev_classes));
    /* `kind`'s own class may have been given a `__get__` since (its tag is not the event class's):
     * checked here, where it is used */
    PyObject *k = ec != NULL ? ec->kind : NULL;
    if ((kind = k != NULL && Py_TYPE(k)->tp_descr_get == NULL ? Py_NewRef(k) : PyObject_GetAttr(ev, s_kind)) == NULL)
        goto error;
    if (kind != Py_None) {
        if (venue == NULL && (venue = ev_get(ev, ec, EV_VENUE)) == NULL)
            goto error;
        if (inst == NULL && (inst = ev_get(ev, ec, EV_INSTRUMENT)) == NULL)
            goto error;
        PyObject *key = PyTuple_Pack(3, venue, inst, kind);
        if (key == NULL)
            goto error;
        PyObject *routes = K(C_ROUTES);
        if (PyDict_CheckExact(routes)) {
            slots = PyDict_GetItemWithError(routes, key);
            if (slots == NULL && PyErr_Occurred()) {
                Py_DECREF(key);
                goto error;
            }
            if (slots == NULL)
                slots = PyTuple_New(0);
            else
                Py_INCREF(slots);
        } else {
            PyObject *empty = PyTuple_New(0);
            slots = empty == NULL ? NULL : PyObject_CallMethodObjArgs(routes, s_get, key, empty, NULL);
            Py_XDECREF(empty);
        }
        Py_DECREF(key);
        if (slots == NULL)
            goto error;
    } else if ((slots = PyObject_CallOneArg(K(C_ROUTE), ev)) == NULL) {
        goto error;
    }
    Py_XDECREF(venue);
    Py_XDECREF(inst);
    Py_XDECREF(kind);
    int any = PyObject_IsTrue(slots);
    if (any <= 0) {
        Py_DECREF(slots);
        return any;
    }
    *routed = 1;
    if (PyTuple_CheckExact(slots)) { /* the routes' tuples: by index (no iterator a fan-out) */
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(slots); k++) {
            if (deliver_one(consts, PyTuple_GET_ITEM(slots, k), ev) < 0) {
                Py_DECREF(slots);
                return -1;
            }
        }
        Py_DECREF(slots);
        return 0;
    }
    PyObject *it = PyObject_GetIter(slots);
    Py_DECREF(slots);
    if (it == NULL)
        return -1;
    PyObject *slot;
    while ((slot = PyIter_Next(it)) != NULL) {
        int r = deliver_one(consts, slot, ev);
        Py_DECREF(slot);
        if (r < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
error:
    Py_XDECREF(venue);
    Py_XDECREF(inst);
    Py_XDECREF(kind);
    return -1;
}

/* A frame of events none routed: the Python loop's `if not routed:` block. `last`: its last
 * event (borrowed), `n` the events. */
static int unrouted(PyObject *consts, PyObject *events, Py_ssize_t n, PyObject *last, PyObject *idx, int fill_used) {
    if (n == 0) {
        PyObject *venue = PyObject_GetItem(K(C_VENUE_OF), idx);
        if (venue == NULL)
            return -1;
        PyObject *r = PyObject_CallFunctionObjArgs(K(C_NO_EVENT), idx, venue, NULL);
        Py_DECREF(venue);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return 0;
    }
    if (bump_item(K(C_UNROUTED_BY), idx) < 0)
        return -1;
    if (fill_used)
        return bump_item(K(C_FILL_USED_BY), idx);
    if (n == 1) {
        if ((PyObject *)Py_TYPE(last) != K(C_BOOK_UPDATE))
            return 0;
        PyObject *venue = PyObject_GetAttr(last, s_venue);
        if (venue == NULL)
            return -1;
        PyObject *own = PyObject_GetItem(K(C_VENUE_OF), idx);
        if (own == NULL) {
            Py_DECREF(venue);
            return -1;
        }
        int same = PyObject_RichCompareBool(venue, own, Py_EQ);
        Py_DECREF(venue);
        Py_DECREF(own);
        if (same < 0)
            return -1;
        int r = -1;
        if (same) {
            PyObject *single = PyObject_GetItem(K(C_BOOK_FRAME_BY), idx);
            PyObject *inst = single == NULL ? NULL : PyObject_GetAttr(last, s_instrument);
            if (inst != NULL)
                r = bump_get(single, inst);
            Py_XDECREF(single);
            Py_XDECREF(inst);
        } else {
            PyObject *v = PyObject_GetAttr(last, s_venue);
            PyObject *inst = v == NULL ? NULL : PyObject_GetAttr(last, s_instrument);
            PyObject *pair = inst == NULL ? NULL : PyTuple_Pack(2, v, inst);
            PyObject *one = pair == NULL ? NULL : PyTuple_Pack(1, pair);
            PyObject *counts = one == NULL ? NULL : PyObject_GetItem(K(C_BOOK_FRAMES_BY), idx);
            if (counts != NULL)
                r = bump_get(counts, one);
            Py_XDECREF(v);
            Py_XDECREF(inst);
            Py_XDECREF(pair);
            Py_XDECREF(one);
            Py_XDECREF(counts);
        }
        return r;
    }
    /* books = tuple(dict.fromkeys((e.venue, e.instrument) for e in events if type(e) is BookUpdate)) */
    PyObject *seen = PyDict_New();
    if (seen == NULL)
        return -1;
    PyObject *it = PyObject_GetIter(events);
    if (it == NULL) {
        Py_DECREF(seen);
        return -1;
    }
    PyObject *e;
    while ((e = PyIter_Next(it)) != NULL) {
        if ((PyObject *)Py_TYPE(e) == K(C_BOOK_UPDATE)) {
            PyObject *v = PyObject_GetAttr(e, s_venue);
            PyObject *inst = v == NULL ? NULL : PyObject_GetAttr(e, s_instrument);
            PyObject *pair = inst == NULL ? NULL : PyTuple_Pack(2, v, inst);
            int r = pair == NULL ? -1 : PyDict_SetItem(seen, pair, Py_None);
            Py_XDECREF(v);
            Py_XDECREF(inst);
            Py_XDECREF(pair);
            if (r < 0) {
                Py_DECREF(e);
                Py_DECREF(it);
                Py_DECREF(seen);
                return -1;
            }
        }
        Py_DECREF(e);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        Py_DECREF(seen);
        return -1;
    }
    if (PyDict_GET_SIZE(seen) == 0) {
        Py_DECREF(seen);
        return 0;
    }
    PyObject *keys = PyDict_Keys(seen);
    Py_DECREF(seen);
    PyObject *books = keys == NULL ? NULL : PyList_AsTuple(keys);
    Py_XDECREF(keys);
    if (books == NULL)
        return -1;
    PyObject *counts = PyObject_GetItem(K(C_BOOK_FRAMES_BY), idx);
    int r = counts == NULL ? -1 : bump_get(counts, books);
    Py_XDECREF(counts);
    Py_DECREF(books);
    return r;
}

static int write_state(PyObject *state, long long frames, long long events) {
    PyObject *f = PyLong_FromLongLong(frames);
    if (f == NULL)
        return -1;
    if (PyList_SetItem(state, 0, f) < 0) /* steals f */
        return -1;
    PyObject *e = PyLong_FromLongLong(events);
    if (e == NULL)
        return -1;
    return PyList_SetItem(state, 1, e);
}

static int as_limit(PyObject *v, long long *out) {
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred())
            return -1;
        *out = overflow > 0 ? LLONG_MAX : overflow < 0 ? LLONG_MIN : x;
        return 0;
    }
    if (PyFloat_CheckExact(v) && Py_IS_INFINITY(PyFloat_AS_DOUBLE(v)) && PyFloat_AS_DOUBLE(v) > 0) {
        *out = LLONG_MAX;
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "_kernel.loop: a threshold is an int or +inf");
    return -1;
}

/* The classes the caches above hold, released: a class is kept alive by this module only while
 * a loop that uses it runs (each call learns them again, at its start or first use), and not
 * after the module (its free). Releasing one may free it (no other reference), running code.
 * The offsets learnt with them go too (-1, NULL: "not a slot", as for a class of another shape):
 * every reader compares the object's type with the cached one (NULL now) or relearns before it
 * reads an offset, so none is read stale today; reset, none can be by a later reader that forgets
 * to. Cleared before the types are released: a finaliser that runs may call in again. */
static void forget_classes(void) {
    book_tag = market_tag = slot_tag = 0;
    off_bb = off_ba = off_valid = off_inv = -1;
    off_tickers = off_rate_key = off_index = -1;
    for (int i = 0; i < SL_COUNT; i++)
        slot_offs[i] = -1;
    for (int i = 0; i < 3; i++) {
        ev_classes[i].tag = 0;
        ev_classes[i].kind = NULL; /* borrowed from the class released below */
        for (int j = 0; j < EV_N; j++)
            ev_classes[i].off[j] = -1;
    }
    Py_CLEAR(book_type);
    Py_CLEAR(market_type);
    Py_CLEAR(slot_type);
    for (int i = 0; i < 3; i++)
        Py_CLEAR(ev_classes[i].type);
}

/* `forget_classes` with the exception pending (if any) kept round it: releasing a class may run
 * code (finalisers), which must neither see nor clear it. */
static void forget_classes_keeping_error(void) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    forget_classes();
    PyErr_Restore(type, value, tb);
}

static PyObject *loop(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "loop(kernel, frames, consts, state)");
        return NULL;
    }
    PyObject *kernel = args[0], *frames_it = args[1], *consts = args[2], *state = args[3];
    if (!PyTuple_CheckExact(consts) || PyTuple_GET_SIZE(consts) != C_COUNT || !PyList_CheckExact(state) ||
        PyList_GET_SIZE(state) != 4 || !PyIter_Check(frames_it) || !PyList_CheckExact(K(C_TIMERS)) ||
        !PyList_CheckExact(K(C_DECODERS)) || !PyLong_CheckExact(K(C_MASK))) {
        PyErr_SetString(PyExc_TypeError, "_kernel.loop: arguments not as the kernel passes them");
        return NULL;
    }
    long long frames, events_count, next_sample, next_expiry, mask;
    if (as_limit(PyList_GET_ITEM(state, 0), &frames) < 0 || as_limit(PyList_GET_ITEM(state, 1), &events_count) < 0 ||
        as_limit(PyList_GET_ITEM(state, 2), &next_sample) < 0 || as_limit(PyList_GET_ITEM(state, 3), &next_expiry) < 0 ||
        as_limit(K(C_MASK), &mask) < 0)
        return NULL;
    PyObject *timers = K(C_TIMERS), *decoders = K(C_DECODERS);
    book_offsets(K(C_ORDER_BOOK));
    market_offsets(K(C_MARKET));
    slot_offsets(K(C_SLOT_TYPE));
    PyObject *result = NULL;
    PyObject *item = NULL, *events = NULL;
    /* A generator suspended in `yield from <a list iterator>` (RecordingReader._read yields a
     * batch of its lines so) yields that iterator's next item each time it is resumed: the loop
     * takes them from the iterator itself (no resume a line), and resumes the generator once it
     * is exhausted (where the generator goes on as it would have). `batch`: that iterator. */
    PyObject *batch = NULL;
    int probe = PyGen_CheckExact(frames_it), misses = 0;
    for (;;) {
        if ((frames & 255) == 0 && PyErr_CheckSignals() < 0)
            goto error;
        if (batch != NULL && (item = (*Py_TYPE(batch)->tp_iternext)(batch)) == NULL)
            Py_CLEAR(batch); /* a list iterator ends without an exception */
        if (item == NULL) {
            item = PyIter_Next(frames_it);
            if (item == NULL) {
                if (PyErr_Occurred())
                    goto error;
                result = Py_None;
                Py_INCREF(result);
                goto out;
            }
            if (probe) {
                PyObject *from = PyObject_GetAttr(frames_it, s_gi_yieldfrom);
                if (from == NULL)
                    goto error;
                if (Py_IS_TYPE(from, &PyListIter_Type)) {
                    batch = from;
                    misses = 0;
                } else {
                    Py_DECREF(from);
                    probe = ++misses < 64; /* a generator that yields its items itself */
                }
            }
        }
        PyObject *ts, *idx, *frame;
        long long ts64;
        Py_ssize_t i;
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3 ||
            !PyLong_CheckExact(ts = PyTuple_GET_ITEM(item, 0)) || !PyLong_CheckExact(idx = PyTuple_GET_ITEM(item, 1)))
            goto hand_back;
        {
            int overflow;
            ts64 = PyLong_AsLongLongAndOverflow(ts, &overflow);
            if (overflow || (ts64 == -1 && PyErr_Occurred()))
                goto hand_back;
            i = PyLong_AsSsize_t(idx);
            if (i == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                goto hand_back;
            }
            if (i < 0 || i >= PyList_GET_SIZE(decoders))
                goto hand_back;
        }
        frame = PyTuple_GET_ITEM(item, 2);
        /* if timers and timers[0][0] <= ts: self._run_timers(ts) */
        if (PyList_GET_SIZE(timers) > 0) {
            PyObject *top = PyList_GET_ITEM(timers, 0);
            Py_INCREF(top);
            PyObject *when = PySequence_GetItem(top, 0);
            Py_DECREF(top);
            if (when == NULL)
                goto error;
            int due = PyObject_RichCompareBool(when, ts, Py_LE);
            Py_DECREF(when);
            if (due < 0)
                goto error;
            if (due) {
                PyObject *r = PyObject_CallOneArg(K(C_RUN_TIMERS), ts);
                if (r == NULL)
                    goto error;
                Py_DECREF(r);
            }
        }
        if (PyObject_SetAttr(kernel, s_now, ts) < 0)
            goto error;
        frames += 1;
        if (bump_item(K(C_FRAMES_BY), idx) < 0)
            goto error;
        {
            if (i >= PyList_GET_SIZE(decoders)) { /* the list changed meanwhile: as Python indexes it */
                PyErr_SetString(PyExc_IndexError, "list index out of range");
                goto error;
            }
            PyObject *decoder = PyList_GET_ITEM(decoders, i);
            Py_INCREF(decoder);
            PyObject *dargs[2] = {frame, ts};
            events = PyObject_Vectorcall(decoder, dargs, 2, NULL);
            Py_DECREF(decoder);
        }
        if (events == NULL) {
            if (!PyErr_ExceptionMatches(K(C_MALFORMED)))
                goto error;
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            if (tb != NULL && value != NULL)
                PyException_SetTraceback(value, tb);
            Py_XDECREF(type);
            Py_XDECREF(tb);
            if (value == NULL)
                goto error;
            result = PyTuple_Pack(4, code_malformed, ts, idx, value);
            Py_DECREF(value);
            goto out;
        }
        Py_ssize_t n = PyObject_Size(events);
        if (n < 0)
            goto error;
        events_count += n;
        int routed = 0, fill_used = 0;
        PyObject *last = NULL;
        if (PyList_CheckExact(events)) { /* by index, as its iterator goes (its size read each time) */
            for (Py_ssize_t k = 0; k < PyList_GET_SIZE(events); k++) {
                PyObject *ev = Py_NewRef(PyList_GET_ITEM(events, k));
                int r = one_event(consts, ev, ts, &routed, &fill_used);
                Py_XDECREF(last);
                last = ev;
                if (r < 0) {
                    Py_DECREF(last);
                    goto error;
                }
            }
        } else {
            PyObject *it = PyObject_GetIter(events);
            if (it == NULL)
                goto error;
            PyObject *ev;
            while ((ev = PyIter_Next(it)) != NULL) {
                int r = one_event(consts, ev, ts, &routed, &fill_used);
                Py_XDECREF(last);
                last = ev;
                if (r < 0) {
                    Py_DECREF(it);
                    Py_DECREF(last);
                    goto error;
                }
            }
            Py_DECREF(it);
            if (PyErr_Occurred()) {
                Py_XDECREF(last);
                goto error;
            }
        }
        if (!routed) {
            /* `len(events) == 1` is read again after the events, as Python does */
            Py_ssize_t m = n ? PyObject_Size(events) : 0;
            int r = m < 0 ? -1 : unrouted(consts, events, m, last, idx, fill_used);
            if (r < 0) {
                Py_XDECREF(last);
                goto error;
            }
        }
        Py_XDECREF(last);
        Py_CLEAR(events);
        if (ts64 >= next_sample || (frames & mask) == 0 || ts64 >= next_expiry) {
            result = PyTuple_Pack(4, code_post, ts, idx, Py_None);
            goto out;
        }
        Py_CLEAR(item);
        continue;
    hand_back:
        result = PyTuple_Pack(4, code_frame, item, Py_None, Py_None);
        goto out;
    }
error:
    Py_XDECREF(item);
    Py_XDECREF(events);
    Py_XDECREF(batch);
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        forget_classes();
        int w = write_state(state, frames, events_count);
        if (w < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return NULL;
        }
        PyErr_Restore(type, value, tb);
    }
    return NULL;
out:
    Py_XDECREF(item);
    Py_XDECREF(events);
    Py_XDECREF(batch);
    forget_classes_keeping_error(); /* result NULL: PyTuple_Pack's error pending */
    if (write_state(state, frames, events_count) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

/* Refuses (TypeError) an event whose class is not exactly `tradingd.engine.model.events.<name>`,
 * the class the loop hands the C path (the exported helpers take any object): 0, or -1. */
static int exact_event(PyObject *ev, const char *name) {
    PyObject *mod = PyImport_ImportModule("tradingd.engine.model.events");
    if (mod == NULL)
        return -1;
    PyObject *cls = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    if (cls == NULL)
        return -1;
    int same = (PyObject *)Py_TYPE(ev) == cls;
    Py_DECREF(cls);
    if (!same) {
        PyErr_Format(PyExc_TypeError, "_kernel: a %s is expected, not '%.200s'", name, Py_TYPE(ev)->tp_name);
        return -1;
    }
    return 0;
}

/* `book_reaches(sim, ev, order_book)`: the loop's check of the book update `ev` for an instrument
 * in `sim.reach` (what `venue_side` decides), for the tests that hold it to the method's. */
static PyObject *book_reaches_py(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "book_reaches(sim, ev, order_book)");
        return NULL;
    }
    if (exact_event(args[1], "BookUpdate") < 0)
        return NULL;
    book_offsets(args[2]);
    PyObject *inst = PyObject_GetAttr(args[1], s_instrument), *table = NULL, *entry = NULL;
    if (inst != NULL && (table = PyObject_GetAttr(args[0], s_reach)) != NULL)
        entry = PyObject_GetItem(table, inst);
    int r = entry == NULL ? -1 : book_reaches(args[0], args[1], inst, entry);
    Py_XDECREF(table);
    Py_XDECREF(entry);
    Py_XDECREF(inst);
    forget_classes_keeping_error(); /* as a loop call does: no class held after the call */
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

/* `on_ticker(market, method, ticker)`: the loop's `market.on_ticker(ticker)` (`method` the bound
 * method, called where the loop calls it), for the tests that hold it to the method's. */
static PyObject *on_ticker_py(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "on_ticker(market, method, ticker)");
        return NULL;
    }
    if (exact_event(args[2], "Ticker") < 0)
        return NULL;
    market_offsets(args[0]);
    int r = on_ticker(args[0], args[1], args[2]);
    forget_classes_keeping_error(); /* as a loop call does: no class held after the call */
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"on_ticker", (PyCFunction)(void (*)(void))on_ticker_py, METH_FASTCALL,
     "on_ticker(market, method, ticker): the loop's ticker path (for the tests)."},
    {"book_reaches", (PyCFunction)(void (*)(void))book_reaches_py, METH_FASTCALL,
     "book_reaches(sim, ev, order_book): the loop's `on_book` check (for the tests)."},
    {"loop", (PyCFunction)(void (*)(void))loop, METH_FASTCALL,
     "loop(kernel, frames, consts, state): the replay loop's common frames (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static void module_free(void *Py_UNUSED(m)) { forget_classes(); }

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", NULL, -1, methods, NULL, NULL, NULL, module_free};

#define INTERN(var, text)                                     \
    do {                                                      \
        if ((var = PyUnicode_InternFromString(text)) == NULL) \
            return NULL;                                      \
    } while (0)

PyMODINIT_FUNC PyInit__kernel(void) {
    INTERN(s_now, "now");
    INTERN(s_venue, "venue");
    INTERN(s_instrument, "instrument");
    INTERN(s_kind, "kind");
    INTERN(s_status, "status");
    INTERN(s_resting, "resting");
    INTERN(s_reach, "reach");
    INTERN(s_books, "books");
    INTERN(s_book_reaches, "book_reaches");
    INTERN(s_bb, "_bb");
    INTERN(s_ba, "_ba");
    INTERN(s_valid, "valid");
    INTERN(s_inv, "_inv");
    INTERN(s_snapshot, "snapshot");
    INTERN(s_bids, "bids");
    INTERN(s_asks, "asks");
    INTERN(s_tickers, "tickers");
    INTERN(s_rate_key, "_rate_key");
    INTERN(s_index, "index");
    INTERN(s_gi_yieldfrom, "gi_yieldfrom");
    INTERN(s_on_book, "on_book");
    INTERN(s_on_trade, "on_trade");
    INTERN(s_received, "received");
    INTERN(s_coro, "coro");
    INTERN(s_phase, "phase");
    INTERN(s_failure, "failure");
    INTERN(s_strategy, "strategy");
    INTERN(s_on_event, "on_event");
    INTERN(s_waiting, "waiting");
    INTERN(s_mailbox, "mailbox");
    INTERN(s_get_nowait, "get_nowait");
    INTERN(s_get, "get");
    INTERN(s_on_event_text, "on_event");
    INTERN(s_await, "__await__");
    if ((code_frame = PyLong_FromLong(0)) == NULL || (code_malformed = PyLong_FromLong(1)) == NULL ||
        (code_post = PyLong_FromLong(2)) == NULL || (_one = PyLong_FromLong(1)) == NULL)
        return NULL;
    forget_classes(); /* no class held yet: the zero-initialised offsets set to -1, "none learnt" */
    return PyModule_Create(&module);
}
