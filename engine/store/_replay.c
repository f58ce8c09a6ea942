/* The compiled replay of the decoded-event cache (evcache.py, issue 17).
 *
 * `Replay(owner, classes, book_update, malformed)` is `owner.apply` (a
 * `ReplayDecoder`) for the two records most frames make: one event, or a tuple of events of the
 * entry's classes. Their events are returned in a new list, the owner's `stats.frames` and
 * `stats.events` moved, and each `BookUpdate` applied to the owner's book of its instrument as
 * `ReplayDecoder.apply` does (a snapshot clears it and makes it valid; the levels set by
 * `OrderBook.update`; `sequence` the update's). Every other record (one with what else the
 * frame did) is handed to the Python method `type(owner).apply`, which stays the reference:
 * tests/store/test_replay_compiled.py replays the same records both ways and compares every
 * event, counter and book after each record. The owner is held weakly (it holds its replay), so a
 * `ReplayDecoder` is in no cycle of its own: code that holds one directly frees it, its books with
 * it, when it drops it (inside a backtest it goes with its kernel, which holds it and is freed
 * when its finished run's last reference goes); a replay called after that raises ReferenceError.
 *
 * `update(book, bids, asks)` is `OrderBook.update` for an exact `OrderBook` (the class given to
 * `setup`, while its
 * `update` is the function defined there) and levels given as exact tuples of exact (float,
 * float) tuples, as the chunk reader and the decoders make them; anything else calls the method.
 * The same operations in the same order as the Python code, on the same objects: ticks are
 * `round(price * inverse)` as Python rounds (half to even, through `PyLong_FromDouble`: NaN a
 * ValueError, an infinity an OverflowError), a level is set, popped and compared through the
 * dict and object API (a key planted in a book by a strategy runs its own code there, as in
 * Python), the book's slots read and written at the points the Python method reads and writes
 * them (at their offsets while the class is unchanged, else through the attribute protocol:
 * "slots by offset" below); every reference used is held.
 *
 * An exception but the `malformed` class on these records is the entry's damage: what
 * `owner.damaged(exc)` returns is raised from it, as the Python method does.
 *
 * `Encoder` and `Records` are the chunk codec of evformat.py (`PyEncoder`, `py_records`, the
 * reference): the same bytes written, the same records read, one at a time, each event built by
 * calling its class (msgspec's vectorcall) with its fields read from the chunk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h> /* offsetof */
#include <stdint.h>
#include <string.h>
#include <structmember.h> /* PyMemberDef, T_OBJECT_EX */

#include "../_typecache.h" /* a class's version tag and its attributes' lookup */

static PyObject *s_stats, *s_books, *s_frames, *s_events, *s_instrument, *s_snapshot, *s_bids, *s_asks,
    *s_sequence, *s_clear, *s_valid, *s_update, *s_inv, *s_bb, *s_ba, *s_pop, *s_damaged, *s_apply;
static PyObject *one = NULL;
static PyObject *py_max = NULL, *py_min = NULL;

/* Python's `round(x)` for a float x: round half to even, as float.__round__ (ndigits None). */
static PyObject *ticks_of(double x) {
    double r = round(x);
    if (fabs(x - r) == 0.5) r = 2.0 * round(x / 2.0);
    return PyLong_FromDouble(r);
}

/* 1 when `levels` is an exact tuple of exact (float, float) tuples. */
static int levels_shaped(PyObject *levels) {
    if (!PyTuple_CheckExact(levels)) return 0;
    Py_ssize_t n = PyTuple_GET_SIZE(levels);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *lvl = PyTuple_GET_ITEM(levels, i);
        if (!PyTuple_CheckExact(lvl) || PyTuple_GET_SIZE(lvl) != 2 || !PyFloat_CheckExact(PyTuple_GET_ITEM(lvl, 0)) ||
            !PyFloat_CheckExact(PyTuple_GET_ITEM(lvl, 1)))
            return 0;
    }
    return 1;
}

/* `levels.pop(t, None)`: a new reference. */
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

/* An exact int's value as a C integer: 1, or 0 when it is not one or does not fit (nothing set). */
static inline int small_int(PyObject *x, long long *out) {
    if (!PyLong_CheckExact(x)) return 0;
#if PY_VERSION_HEX < 0x030C0000
    /* 3.11's int of at most one digit (a side's ticks, nearly always): its value read in place */
    Py_ssize_t digits = Py_SIZE(x);
    if (digits >= -1 && digits <= 1) {
        *out = digits * (long long)((PyLongObject *)x)->ob_digit[0];
        return 1;
    }
#endif
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(x, &overflow); /* an exact int: no error but overflow */
    return !overflow;
}

/* `a <op> b` (Py_GT, Py_LT or Py_EQ) for exact ints that fit a C integer, compared in C (what
 * int's comparison says of them); anything else by `PyObject_RichCompareBool`. 1, 0, or -1. */
static inline int compare(PyObject *a, PyObject *b, int op) {
    long long x, y;
    if (small_int(a, &x) && small_int(b, &y)) return op == Py_GT ? x > y : op == Py_LT ? x < y : x == y;
    return PyObject_RichCompareBool(a, b, op);
}

/* `max(levels) if levels else None` (`min` when `op` is Py_LT): a new reference. Exact int keys
 * that fit a C integer are compared as C integers (no code runs, nothing allocates: the dict
 * cannot change under the scan); at the first key of another type or size, the builtin over the
 * dict from its start, as Python. Keys of a dict are distinct: the extreme is one key. */
static PyObject *extreme(PyObject *levels, int op) {
    if (PyDict_CheckExact(levels)) {
        if (PyDict_GET_SIZE(levels) == 0) return Py_NewRef(Py_None);
        PyObject *key, *value, *m = NULL;
        long long best = 0, x;
        Py_ssize_t pos = 0;
        while (PyDict_Next(levels, &pos, &key, &value)) {
            if (!small_int(key, &x)) goto builtin;
            if (m == NULL || (op == Py_GT ? x > best : x < best)) {
                m = key;
                best = x;
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

/* One side of `OrderBook.update`: `levels` (the side's dict) and `best` (new references, both
 * consumed) and the shaped `in` levels; the new best is returned (a new reference) or NULL. */
static PyObject *update_side(PyObject *levels, PyObject *best, PyObject *in, double inv, int op) {
    int stale = 0;
    Py_ssize_t n = PyTuple_GET_SIZE(in);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *lvl = PyTuple_GET_ITEM(in, i); /* held by `in`, an immutable tuple we hold */
        PyObject *price = PyTuple_GET_ITEM(lvl, 0), *size = PyTuple_GET_ITEM(lvl, 1);
        PyObject *t = ticks_of(PyFloat_AS_DOUBLE(price) * inv);
        if (t == NULL) goto fail;
        if (PyFloat_AS_DOUBLE(size) > 0) {
            /* `levels[t] = size; if best is None or t > best: best = t` */
            int r = PyDict_CheckExact(levels) ? PyDict_SetItem(levels, t, size) : PyObject_SetItem(levels, t, size);
            if (r < 0) {
                Py_DECREF(t);
                goto fail;
            }
            int better = 1;
            if (best != Py_None) {
                better = compare(t, best, op);
                if (better < 0) {
                    Py_DECREF(t);
                    goto fail;
                }
            }
            if (better) Py_SETREF(best, Py_NewRef(t));
        } else {
            /* `elif levels.pop(t, None) is not None and t == best: stale = True` */
            PyObject *old = pop_level(levels, t);
            if (old == NULL) {
                Py_DECREF(t);
                goto fail;
            }
            int was = old != Py_None;
            Py_DECREF(old); /* may run a finalizer: every reference used is held */
            if (was) {
                int eq = compare(t, best, Py_EQ);
                if (eq < 0) {
                    Py_DECREF(t);
                    goto fail;
                }
                if (eq) stale = 1;
            }
        }
        Py_DECREF(t);
    }
    if (stale) Py_SETREF(best, extreme(levels, op));
    Py_DECREF(levels);
    return best;
fail:
    Py_DECREF(levels);
    Py_DECREF(best);
    return NULL;
}

/* -- slots by offset ----------------------------------------------------------------------------
 * An attribute that is a plain slot of its class (a member descriptor of an object: `__slots__`,
 * a msgspec field, an attrs slots class's field) is read and written at its offset, as the
 * descriptor does, while the class is the one the offsets were taken from and unchanged since:
 * its version tag (an assignment to the class or to a base makes a new one, and a tag is never
 * reused). Otherwise, and for a slot left unset, the attribute protocol, as Python's code: the
 * same values, the same AttributeError at the same point. */
#define MAX_SLOTS 8
typedef struct {
    PyTypeObject *type; /* held */
    unsigned int tag;   /* 0: taken, but not to be trusted (the class had no valid tag) */
    Py_ssize_t off[MAX_SLOTS];
    PyObject *seen; /* what `probe` (a method name) was on the class then: borrowed, compared only */
} Slots;

static inline int slots_fresh(const Slots *c, PyTypeObject *type) {
    return c->type == type && c->tag != 0 && tc_version(type) == c->tag;
}

/* The offsets of `names` (n of them) in `type`, and what `probe` is on it (NULL: nothing asked). */
static void slots_take(Slots *c, PyTypeObject *type, PyObject *const *names, int n, PyObject *probe) {
    for (int i = 0; i < n; i++) {
        PyObject *d = tc_lookup(type, names[i]); /* borrowed */
        c->off[i] = -1;
        if (d != NULL && Py_TYPE(d) == &PyMemberDescr_Type) {
            PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
            /* a descriptor of this class or a base (one planted from another class is its own) */
            if (m->type == T_OBJECT_EX && !(m->flags & READONLY) &&
                PyType_IsSubtype(type, ((PyMemberDescrObject *)d)->d_common.d_type))
                c->off[i] = m->offset;
        }
    }
    c->seen = probe != NULL ? tc_lookup(type, probe) : NULL;
    if (c->type != type) Py_XSETREF(c->type, (PyTypeObject *)Py_NewRef(type));
    c->tag = tc_version(type); /* after the lookups, which give it a tag */
}

/* The slots of `obj` for `names`: fresh, or taken again (then -1 everywhere when they cannot be). */
static inline Slots *slots_of(Slots *c, PyObject *obj, PyObject *const *names, int n, PyObject *probe) {
    PyTypeObject *type = Py_TYPE(obj);
    if (!slots_fresh(c, type)) slots_take(c, type, names, n, probe);
    return c;
}

/* `obj.name`: a new reference, or NULL with the attribute protocol's exception. */
static inline PyObject *slot_get(PyObject *obj, Py_ssize_t off, PyObject *name) {
    if (off >= 0) {
        PyObject *v = *(PyObject **)((char *)obj + off);
        if (v != NULL) return Py_NewRef(v);
    }
    return PyObject_GetAttr(obj, name);
}

/* `obj.name = v`: 0, or -1. The old value is released after the new one is in place. */
static inline int slot_set(PyObject *obj, Py_ssize_t off, PyObject *name, PyObject *v) {
    if (off >= 0) {
        PyObject **addr = (PyObject **)((char *)obj + off);
        PyObject *old = *addr;
        *addr = Py_NewRef(v);
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(obj, name, v);
}

static PyTypeObject *order_book_type = NULL; /* the exact OrderBook (`setup`); NULL: every book the method's */
static PyObject *order_book_update = NULL;   /* OrderBook.update as defined (a patched one is called) */
enum { B_INV, B_BIDS, B_BB, B_ASKS, B_BA, B_SEQUENCE, B_VALID, B_N };
static PyObject *book_names[B_N];
static Slots book_slots;

/* The offset of the book's slot `i` now: every access asks (cheap while the class is unchanged),
   for code run meanwhile (a level's comparison, a value released) may have changed the class. */
#define BOOK_SLOT(book, i) (slots_of(&book_slots, (book), book_names, B_N, s_update)->off[i])

/* `book.update(bids, asks)`: 0, or -1 with an exception set. */
static int update_book(PyObject *book, PyObject *bids, PyObject *asks) {
    PyObject *inv_obj = NULL;
    if (order_book_type == NULL || Py_TYPE(book) != order_book_type || !levels_shaped(bids) || !levels_shaped(asks))
        goto method;
    /* the method `book.update` finds: a patched one is called */
    if (slots_of(&book_slots, book, book_names, B_N, s_update)->seen != order_book_update) goto method;
    /* `inv = self._inv`: a float, or the method (which multiplies by whatever it is) */
    inv_obj = slot_get(book, BOOK_SLOT(book, B_INV), s_inv);
    if (inv_obj == NULL) return -1;
    if (!PyFloat_CheckExact(inv_obj)) {
        Py_DECREF(inv_obj);
        goto method;
    }
    double inv = PyFloat_AS_DOUBLE(inv_obj);
    Py_DECREF(inv_obj);
    Py_INCREF(bids);
    Py_INCREF(asks);
    Py_INCREF(book);
    int rc = -1;
    /* `levels = self.bids; best = self._bb`, the loop, `self._bb = ...` */
    PyObject *levels = slot_get(book, BOOK_SLOT(book, B_BIDS), s_bids), *best = NULL;
    if (levels == NULL) goto done;
    best = slot_get(book, BOOK_SLOT(book, B_BB), s_bb);
    if (best == NULL) {
        Py_DECREF(levels);
        goto done;
    }
    best = update_side(levels, best, bids, inv, Py_GT);
    if (best == NULL) goto done;
    if (slot_set(book, BOOK_SLOT(book, B_BB), s_bb, best) < 0) {
        Py_DECREF(best);
        goto done;
    }
    Py_DECREF(best);
    /* `levels = self.asks; best = self._ba`, the loop, `self._ba = ...` */
    levels = slot_get(book, BOOK_SLOT(book, B_ASKS), s_asks);
    if (levels == NULL) goto done;
    best = slot_get(book, BOOK_SLOT(book, B_BA), s_ba);
    if (best == NULL) {
        Py_DECREF(levels);
        goto done;
    }
    best = update_side(levels, best, asks, inv, Py_LT);
    if (best == NULL) goto done;
    rc = slot_set(book, BOOK_SLOT(book, B_BA), s_ba, best);
    Py_DECREF(best);
done:
    Py_DECREF(bids);
    Py_DECREF(asks);
    Py_DECREF(book);
    return rc;
method:;
    PyObject *r = PyObject_CallMethodObjArgs(book, s_update, bids, asks, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static int setup_book_type(PyObject *type) {
    if (order_book_type != NULL) return 0;
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "order_book must be a type");
        return -1;
    }
    PyObject *fn = tc_lookup((PyTypeObject *)type, s_update); /* borrowed */
    if (fn == NULL) {
        PyErr_SetString(PyExc_TypeError, "order_book has no update");
        return -1;
    }
    order_book_type = (PyTypeObject *)Py_NewRef(type);
    order_book_update = Py_NewRef(fn);
    return 0;
}

/* `setup(OrderBook)`: the exact class whose books are updated in C (evcache calls it at import). */
static PyObject *setup(PyObject *module, PyObject *order_book) {
    if (setup_book_type(order_book) < 0) return NULL;
    if ((PyTypeObject *)order_book != order_book_type) {
        PyErr_SetString(PyExc_TypeError, "one OrderBook class per process");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *update(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "update(book, bids, asks)");
        return NULL;
    }
    if (update_book(args[0], args[1], args[2]) < 0) return NULL;
    Py_RETURN_NONE;
}

/* -- Replay ------------------------------------------------------------------------------------ */
enum { O_STATS, O_BOOKS, O_N };
enum { S_FRAMES, S_EVENTS, S_N };
enum { E_INSTRUMENT, E_SNAPSHOT, E_BIDS, E_ASKS, E_SEQUENCE, E_N };
static PyObject *owner_names[O_N], *stats_names[S_N], *event_names[E_N];

typedef struct {
    PyObject_HEAD
    /* A weak reference to the ReplayDecoder, which holds this replay (its `apply`): a strong one
     * was a cycle of the decoder's own, so one dropped by code that held it directly (bench_cache's
     * data path, a tool) waited for a full collection, its books with it. A backtest's decoders are
     * held by its kernel (`decoders`), freed with it once its run is over. Held
     * strongly for each call (`owner_of`); a replay called after its decoder is freed is a
     * ReferenceError. */
    PyObject *owner;
    PyObject *classes;   /* frozenset of the entry's event classes */
    PyObject *book_update;
    PyObject *malformed; /* MalformedFrame: raised as it is */
    PyObject *method;    /* type(owner).apply: the reference, for every other record */
    vectorcallfunc vectorcall;
    Slots owner_slots, stats_slots, event_slots;
} Replay;

#define SLOT(cache, obj, names, n, i) (slots_of(&(cache), (obj), (names), (n), NULL)->off[i])

/* `stats.<name> += n` */
static int bump(Replay *self, PyObject *stats, int i, PyObject *n) {
    PyObject *name = stats_names[i];
    PyObject *v = slot_get(stats, SLOT(self->stats_slots, stats, stats_names, S_N, i), name);
    if (v == NULL) return -1;
    PyObject *w = PyNumber_InPlaceAdd(v, n);
    Py_DECREF(v);
    if (w == NULL) return -1;
    int r = slot_set(stats, SLOT(self->stats_slots, stats, stats_names, S_N, i), name, w);
    Py_DECREF(w);
    return r;
}

#define EVENT(ev, i) slot_get((ev), SLOT(self->event_slots, (ev), event_names, E_N, (i)), event_names[i])

/* One BookUpdate applied to `books` (the owner's dict): 0, or -1. */
static int apply_book(Replay *self, PyObject *books, PyObject *ev) {
    PyObject *inst = EVENT(ev, E_INSTRUMENT);
    if (inst == NULL) return -1;
    PyObject *book;
    if (PyDict_CheckExact(books)) {
        book = PyDict_GetItemWithError(books, inst);
        Py_XINCREF(book);
        if (book == NULL && PyErr_Occurred()) {
            Py_DECREF(inst);
            return -1;
        }
    } else {
        book = PyObject_CallMethod(books, "get", "O", inst);
        if (book == NULL) {
            Py_DECREF(inst);
            return -1;
        }
        if (book == Py_None) Py_CLEAR(book);
    }
    Py_DECREF(inst);
    if (book == NULL || book == Py_None) {
        Py_XDECREF(book);
        return 0;
    }
    int rc = -1;
    PyObject *bids = NULL, *asks = NULL, *seq = NULL;
    PyObject *snap = EVENT(ev, E_SNAPSHOT);
    if (snap == NULL) goto done;
    int is_snap = snap == Py_False ? 0 : snap == Py_True ? 1 : PyObject_IsTrue(snap);
    Py_DECREF(snap);
    if (is_snap < 0) goto done;
    if (is_snap) {
        PyObject *r = PyObject_CallMethodNoArgs(book, s_clear);
        if (r == NULL) goto done;
        Py_DECREF(r);
        if (slot_set(book, BOOK_SLOT(book, B_VALID), s_valid, Py_True) < 0) goto done;
    }
    bids = EVENT(ev, E_BIDS);
    if (bids == NULL) goto done;
    asks = EVENT(ev, E_ASKS);
    if (asks == NULL) goto done;
    if (update_book(book, bids, asks) < 0) goto done;
    seq = EVENT(ev, E_SEQUENCE);
    if (seq == NULL) goto done;
    rc = slot_set(book, BOOK_SLOT(book, B_SEQUENCE), s_sequence, seq);
done:
    Py_XDECREF(bids);
    Py_XDECREF(asks);
    Py_XDECREF(seq);
    Py_DECREF(book);
    return rc;
}

/* The decoder (a new reference), or NULL with a ReferenceError when it was freed. */
static inline PyObject *owner_of(Replay *self) {
    PyObject *owner;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyWeakref_GetRef(self->owner, &owner) < 0) return NULL;
#else
    owner = PyWeakref_GET_OBJECT(self->owner); /* borrowed; None when it was freed */
    owner = owner == Py_None ? NULL : Py_NewRef(owner);
#endif
    if (owner == NULL)
        PyErr_SetString(PyExc_ReferenceError, "a compiled replay called after its ReplayDecoder is gone");
    return owner;
}

/* `raise damaged(exc) from exc` in an `except Exception as exc:` clause, as Python runs it, for
 * the exception set (`damaged` the callable `fn`, or `owner.damaged` when `owner` is given):
 * what is not an Exception (KeyboardInterrupt, SystemExit, a generator's exit), what matches
 * `pass` (MalformedFrame, as it is), and anything with `fn` None go through as they are.
 * Python's `raise` throughout: `exc` is the exception being handled while `damaged` is found,
 * called and raised (what raises meanwhile has it as its context, the raised one too unless it
 * is `exc` itself); an exception class returned is called; anything else returned is the
 * TypeError Python's `raise` gives (that no `damaged` of ours returns: a test's, a subclass's,
 * which was given to PyException_SetContext as if an exception, a write past a small object). */
static PyObject *raise_damaged(PyObject *fn, PyObject *owner, PyObject *pass) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (fn == Py_None || value == NULL || !PyErr_GivenExceptionMatches(type, PyExc_Exception) ||
        (pass != NULL && PyErr_GivenExceptionMatches(type, pass))) {
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    if (tb != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(tb);
    Py_DECREF(type);
    PyObject *handled_type, *handled, *handled_tb; /* the clause's `exc` handled meanwhile */
    PyErr_GetExcInfo(&handled_type, &handled, &handled_tb);
    PyErr_SetExcInfo(Py_NewRef((PyObject *)Py_TYPE(value)), Py_NewRef(value), PyException_GetTraceback(value));
    fn = owner != NULL ? PyObject_GetAttr(owner, s_damaged) : Py_NewRef(fn);
    PyObject *exc = fn == NULL ? NULL : PyObject_CallOneArg(fn, value);
    Py_XDECREF(fn);
    if (exc != NULL && PyExceptionClass_Check(exc)) { /* `raise Class from exc`: Class() */
        PyObject *cls = exc;
        exc = PyObject_CallNoArgs(cls);
        if (exc != NULL && !PyExceptionInstance_Check(exc)) {
            PyErr_Format(PyExc_TypeError, "calling %R should have returned an instance of BaseException, not %R",
                         cls, (PyObject *)Py_TYPE(exc));
            Py_CLEAR(exc);
        }
        Py_DECREF(cls);
    } else if (exc != NULL && !PyExceptionInstance_Check(exc)) {
        Py_CLEAR(exc);
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    }
    if (exc != NULL) {
        PyException_SetCause(exc, Py_NewRef(value)); /* steals; sets __suppress_context__ */
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc); /* its context: `value`, chained as Python chains */
        Py_DECREF(exc);
    }
    PyErr_SetExcInfo(handled_type, handled, handled_tb);
    Py_DECREF(value);
    return NULL;
}

static PyObject *replay_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Replay *self = (Replay *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "apply(body, ts_local)");
        return NULL;
    }
    PyObject *body = args[0];
    PyObject *events = NULL, *result = NULL;
    /* held for the call: code run on the way (a level's comparison, a value released) may drop
       the decoder's other references */
    PyObject *owner = owner_of(self);
    if (owner == NULL) return NULL;
    int known = PySet_Contains(self->classes, (PyObject *)Py_TYPE(body));
    if (known < 0) goto out;
    if (known) {
        events = PyList_New(1);
        if (events == NULL) goto out;
        PyList_SET_ITEM(events, 0, Py_NewRef(body));
    } else if (PyTuple_CheckExact(body)) {
        Py_ssize_t n = PyTuple_GET_SIZE(body);
        for (Py_ssize_t i = 0; i < n; i++) {
            int k = PySet_Contains(self->classes, (PyObject *)Py_TYPE(PyTuple_GET_ITEM(body, i)));
            if (k < 0) goto out;
            if (!k) goto reference; /* the reference says what is wrong */
        }
        events = PyList_New(n);
        if (events == NULL) goto out;
        for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(events, i, Py_NewRef(PyTuple_GET_ITEM(body, i)));
    } else {
        goto reference;
    }
    /* `stats = self.stats; stats.frames += 1; stats.events += len(events)` */
    PyObject *stats = slot_get(owner, SLOT(self->owner_slots, owner, owner_names, O_N, O_STATS), s_stats);
    if (stats == NULL) goto fail;
    PyObject *count = PyLong_FromSsize_t(PyList_GET_SIZE(events));
    if (count == NULL || bump(self, stats, S_FRAMES, one) < 0 || bump(self, stats, S_EVENTS, count) < 0) {
        Py_XDECREF(count);
        Py_DECREF(stats);
        goto fail;
    }
    Py_DECREF(count);
    Py_DECREF(stats);
    /* `books = self._books; if books: ...` */
    PyObject *books = slot_get(owner, SLOT(self->owner_slots, owner, owner_names, O_N, O_BOOKS), s_books);
    if (books == NULL) goto fail;
    int any = PyDict_CheckExact(books) ? PyDict_GET_SIZE(books) > 0 : PyObject_IsTrue(books);
    if (any < 0) {
        Py_DECREF(books);
        goto fail;
    }
    if (any) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
            PyObject *ev = PyList_GET_ITEM(events, i);
            if ((PyObject *)Py_TYPE(ev) != self->book_update) continue;
            Py_INCREF(ev);
            int r = apply_book(self, books, ev);
            Py_DECREF(ev);
            if (r < 0) {
                Py_DECREF(books);
                goto fail;
            }
        }
    }
    Py_DECREF(books);
    result = events;
    goto out;
fail:
    Py_DECREF(events);
    result = raise_damaged(NULL, owner, self->malformed);
    goto out;
reference:;
    PyObject *call[3] = {owner, body, args[1]};
    result = PyObject_Vectorcall(self->method, call, 3, NULL);
out:
    Py_DECREF(owner);
    return result;
}

static PyObject *replay_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *owner, *classes, *book_update, *malformed;
    if (!PyArg_ParseTuple(args, "OO!OO:Replay", &owner, &PyFrozenSet_Type, &classes, &book_update, &malformed))
        return NULL;
    PyObject *method = PyObject_GetAttr((PyObject *)Py_TYPE(owner), s_apply);
    if (method == NULL) return NULL;
    PyObject *ref = PyWeakref_NewRef(owner, NULL);
    if (ref == NULL) {
        Py_DECREF(method);
        return NULL;
    }
    Replay *self = (Replay *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(method);
        Py_DECREF(ref);
        return NULL;
    }
    self->owner = ref;
    self->classes = Py_NewRef(classes);
    self->book_update = Py_NewRef(book_update);
    self->malformed = Py_NewRef(malformed);
    self->method = method;
    self->vectorcall = replay_call;
    return (PyObject *)self;
}

static int replay_traverse(Replay *self, visitproc visit, void *arg) {
    Py_VISIT(self->owner);
    Py_VISIT(self->classes);
    Py_VISIT(self->book_update);
    Py_VISIT(self->malformed);
    Py_VISIT(self->method);
    Py_VISIT(self->owner_slots.type);
    Py_VISIT(self->stats_slots.type);
    Py_VISIT(self->event_slots.type);
    return 0;
}

static int replay_clear(Replay *self) {
    Py_CLEAR(self->owner);
    Py_CLEAR(self->classes);
    Py_CLEAR(self->book_update);
    Py_CLEAR(self->malformed);
    Py_CLEAR(self->method);
    Py_CLEAR(self->owner_slots.type);
    Py_CLEAR(self->stats_slots.type);
    Py_CLEAR(self->event_slots.type);
    return 0;
}

static void replay_dealloc(Replay *self) {
    PyObject_GC_UnTrack(self);
    replay_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject ReplayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tradingd.engine.store._replay.Replay",
    .tp_basicsize = sizeof(Replay),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Replay(owner, classes, book_update, malformed): owner.apply, compiled.",
    .tp_new = replay_new,
    .tp_traverse = (traverseproc)replay_traverse,
    .tp_clear = (inquiry)replay_clear,
    .tp_dealloc = (destructor)replay_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Replay, vectorcall),
};

/* -- the chunk codec (evformat.py is its reference) ------------------------------------------- */
enum {
    K_NONE = 0, K_FALSE = 1, K_TRUE = 2, K_F64 = 3, K_INT = 4, K_TS = 5, K_TSDELTA = 6, K_STR = 7, K_REF = 8,
    K_LEVELS = 9, K_TUPLE = 10, K_STRUCT = 11, K_CONST = 12, K_PICKLED = 13, K_DEC = 32
};
#define MAX_E 15
#define MAX_DEPTH 32
#define TSDELTA_MAX ((int64_t)1 << 31)
#define TS_MAX ((int64_t)1 << 62)
#define EXACT_M 9007199254740992.0 /* 2**53 */
static const double pow10s[MAX_E + 1] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                         1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

static inline uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t unzigzag(uint64_t u) { return (int64_t)((u >> 1) ^ (~(u & 1) + 1)); }

/* Python's round(x) for a float: half to even (float.__round__). */
static inline double round_even(double x) {
    double r = round(x);
    if (fabs(x - r) == 0.5) r = 2.0 * round(x / 2.0);
    return r;
}

/* -- Encoder -- */
typedef struct {
    PyObject *type;    /* the class (held) */
    unsigned int tag;  /* its version tag when the offsets were taken (0: retaken at every use) */
    PyObject *names;   /* its __struct_fields__ (held) */
    Py_ssize_t n;
    Py_ssize_t *offset; /* each field's slot, or -1: read by name */
} Fields;

typedef struct {
    PyObject_HEAD
    PyObject *kinds, *enums, *reg, *dumps;
    PyObject *strings; /* str -> index in the chunk's table */
    char *buf;
    Py_ssize_t len, cap;
    Py_ssize_t count;
    int64_t prev;
    Fields *fields; /* by struct index */
    Py_ssize_t nfields;
} Encoder;

static int grow(Encoder *e, Py_ssize_t more) {
    if (e->len + more <= e->cap) return 0;
    Py_ssize_t cap = e->cap ? e->cap : 1 << 16;
    while (cap < e->len + more) cap *= 2;
    char *b = PyMem_Realloc(e->buf, cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    e->buf = b;
    e->cap = cap;
    return 0;
}

static inline int put_byte(Encoder *e, unsigned char b) {
    if (e->len >= e->cap && grow(e, 1) < 0) return -1;
    e->buf[e->len++] = (char)b;
    return 0;
}

static inline int put_varint(Encoder *e, uint64_t u) {
    if (e->len + 10 > e->cap && grow(e, 10) < 0) return -1;
    while (u >= 0x80) {
        e->buf[e->len++] = (char)((u & 0x7F) | 0x80);
        u >>= 7;
    }
    e->buf[e->len++] = (char)u;
    return 0;
}

static int put_bytes(Encoder *e, const char *p, Py_ssize_t n) {
    if (put_varint(e, (uint64_t)n) < 0 || grow(e, n) < 0) return -1;
    memcpy(e->buf + e->len, p, n);
    e->len += n;
    return 0;
}

static int put_float(Encoder *e, double x) {
    if (isfinite(x)) {
        for (int k = 0; k <= MAX_E; k++) {
            double s = x * pow10s[k];
            if (!(fabs(s) < EXACT_M)) break;
            /* what the reader computes: the int m (no sign for a zero), then m / 10**k */
            int64_t m = (int64_t)round_even(s);
            double back = (double)m / pow10s[k];
            if (memcmp(&back, &x, sizeof x) == 0) {
                if (put_byte(e, K_DEC + k) < 0) return -1;
                return put_varint(e, zigzag(m));
            }
        }
    }
    if (grow(e, 9) < 0) return -1;
    e->buf[e->len++] = K_F64;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    for (int i = 0; i < 8; i++) e->buf[e->len++] = (char)((bits >> (8 * i)) & 0xFF);
    return 0;
}

/* The fields of struct class index `c` (its class `type`): computed at first use. */
static Fields *fields_of(Encoder *e, Py_ssize_t c, PyObject *type) {
    if (c < e->nfields && e->fields[c].type == type && e->fields[c].tag != 0 &&
        tc_version((PyTypeObject *)type) == e->fields[c].tag)
        return &e->fields[c];
    if (c >= e->nfields) {
        Py_ssize_t n = c + 8;
        Fields *f = PyMem_Realloc(e->fields, n * sizeof(Fields));
        if (f == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memset(f + e->nfields, 0, (n - e->nfields) * sizeof(Fields));
        e->fields = f;
        e->nfields = n;
    }
    Fields *f = &e->fields[c];
    Py_CLEAR(f->type);
    Py_CLEAR(f->names);
    PyMem_Free(f->offset);
    f->offset = NULL;
    PyObject *names = PyObject_GetAttrString(type, "__struct_fields__");
    if (names == NULL) return NULL;
    if (!PyTuple_CheckExact(names)) {
        Py_DECREF(names);
        PyErr_SetString(PyExc_TypeError, "__struct_fields__ is not a tuple");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    f->offset = PyMem_Malloc((n ? n : 1) * sizeof(Py_ssize_t));
    if (f->offset == NULL) {
        Py_DECREF(names);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = tc_lookup((PyTypeObject *)type, PyTuple_GET_ITEM(names, i)); /* borrowed */
        f->offset[i] = -1;
        if (d != NULL && Py_TYPE(d) == &PyMemberDescr_Type) {
            PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
            /* a descriptor of this class or a base (one planted from another class is its own) */
            if (m->type == T_OBJECT_EX &&
                PyType_IsSubtype((PyTypeObject *)type, ((PyMemberDescrObject *)d)->d_common.d_type))
                f->offset[i] = m->offset;
        }
    }
    f->type = Py_NewRef(type);
    f->names = names;
    f->n = n;
    f->tag = tc_version((PyTypeObject *)type); /* after the lookups, which give it a tag */
    return f;
}

static int put_value(Encoder *e, PyObject *v, PyObject *ts_obj, int64_t ts, int depth, int retried);

static int put_struct(Encoder *e, PyObject *v, Py_ssize_t c, PyObject *ts_obj, int64_t ts, int depth) {
    PyObject *type = (PyObject *)Py_TYPE(v);
    Fields *f = fields_of(e, c, type);
    if (f == NULL) return -1;
    if (put_byte(e, K_STRUCT) < 0 || put_varint(e, (uint64_t)c) < 0) return -1;
    Py_ssize_t n = f->n;
    PyObject *names = Py_NewRef(f->names); /* as the reference: the names read once */
    int rc = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        /* taken again for every field: an earlier field's value may have run code (a pickle, the
           writer's `register`) that moved the table or changed the class */
        f = fields_of(e, c, type);
        if (f == NULL) goto done;
        Py_ssize_t off = i < f->n ? f->offset[i] : -1;
        PyObject *x = off >= 0 ? *(PyObject **)((char *)v + off) : NULL;
        if (x != NULL) {
            Py_INCREF(x);
        } else {
            x = PyObject_GetAttr(v, name); /* by name, as Python: its AttributeError if unset */
            if (x == NULL) goto done;
        }
        int r = put_value(e, x, ts_obj, ts, depth + 1, 0);
        Py_DECREF(x);
        if (r < 0) goto done;
    }
    rc = 0;
done:
    Py_DECREF(names);
    return rc;
}

static int float_pair(PyObject *lvl) {
    return PyTuple_CheckExact(lvl) && PyTuple_GET_SIZE(lvl) == 2 && PyFloat_CheckExact(PyTuple_GET_ITEM(lvl, 0)) &&
           PyFloat_CheckExact(PyTuple_GET_ITEM(lvl, 1));
}

static int put_value(Encoder *e, PyObject *v, PyObject *ts_obj, int64_t ts, int depth, int retried) {
    PyTypeObject *cls = Py_TYPE(v);
    if (v == Py_None) return put_byte(e, K_NONE);
    if (v == Py_False) return put_byte(e, K_FALSE);
    if (v == Py_True) return put_byte(e, K_TRUE);
    if (cls == &PyFloat_Type) return put_float(e, PyFloat_AS_DOUBLE(v));
    if (cls == &PyLong_Type) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred()) return -1;
        if (!overflow) {
            if (ts_obj != Py_None) {
                int64_t d;
                if (x == ts) return put_byte(e, K_TS);
                if (!__builtin_sub_overflow((int64_t)x, ts, &d) && d > -TSDELTA_MAX && d < TSDELTA_MAX) {
                    if (put_byte(e, K_TSDELTA) < 0) return -1;
                    return put_varint(e, zigzag(d));
                }
            }
            if (put_byte(e, K_INT) < 0) return -1;
            return put_varint(e, zigzag((int64_t)x));
        }
    } else if (cls == &PyUnicode_Type) {
        PyObject *i = PyDict_GetItemWithError(e->strings, v); /* borrowed */
        if (i != NULL) {
            if (put_byte(e, K_REF) < 0) return -1;
            return put_varint(e, (uint64_t)PyLong_AsSsize_t(i));
        }
        if (PyErr_Occurred()) return -1;
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (s != NULL) {
            PyObject *index = PyLong_FromSsize_t(PyDict_GET_SIZE(e->strings));
            if (index == NULL) return -1;
            int r = PyDict_SetItem(e->strings, v, index);
            Py_DECREF(index);
            if (r < 0 || put_byte(e, K_STR) < 0) return -1;
            return put_bytes(e, s, n);
        }
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear(); /* a lone surrogate: pickled below */
    } else if (cls == &PyTuple_Type && depth < MAX_DEPTH) {
        Py_ssize_t n = PyTuple_GET_SIZE(v);
        int levels = n > 0;
        for (Py_ssize_t i = 0; levels && i < n; i++) levels = float_pair(PyTuple_GET_ITEM(v, i));
        if (levels) {
            if (put_byte(e, K_LEVELS) < 0 || put_varint(e, (uint64_t)n) < 0) return -1;
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *lvl = PyTuple_GET_ITEM(v, i);
                if (put_float(e, PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(lvl, 0))) < 0 ||
                    put_float(e, PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(lvl, 1))) < 0)
                    return -1;
            }
            return 0;
        }
        if (put_byte(e, K_TUPLE) < 0 || put_varint(e, (uint64_t)n) < 0) return -1;
        Py_INCREF(v);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (put_value(e, PyTuple_GET_ITEM(v, i), ts_obj, ts, depth + 1, 0) < 0) {
                Py_DECREF(v);
                return -1;
            }
        }
        Py_DECREF(v);
        return 0;
    }
    PyObject *c = PyDict_GetItemWithError(e->kinds, (PyObject *)cls); /* borrowed */
    if (c == NULL && PyErr_Occurred()) return -1;
    if (c != NULL && depth < MAX_DEPTH) {
        Py_ssize_t k = PyLong_AsSsize_t(c);
        if (k < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a struct index below 0");
            return -1;
        }
        Py_INCREF(v);
        int r = put_struct(e, v, k, ts_obj, ts, depth);
        Py_DECREF(v);
        return r;
    }
    PyObject *members = PyDict_GetItemWithError(e->enums, (PyObject *)cls); /* borrowed */
    if (members == NULL && PyErr_Occurred()) return -1;
    if (members != NULL) {
        Py_INCREF(members); /* the lookup may run code (an enum's __hash__ is Python's) */
        PyObject *i = PyObject_GetItem(members, v);
        Py_DECREF(members);
        if (i != NULL) {
            Py_ssize_t k = PyLong_AsSsize_t(i);
            Py_DECREF(i);
            if (k < 0) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a constant index below 0");
                return -1;
            }
            if (put_byte(e, K_CONST) < 0) return -1;
            return put_varint(e, (uint64_t)k);
        }
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) return -1;
        PyErr_Clear();
    }
    if (!retried && depth < MAX_DEPTH && c == NULL) {
        PyObject *r = PyObject_CallOneArg(e->reg, v);
        if (r == NULL) return -1;
        Py_ssize_t k = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (k == -1 && PyErr_Occurred()) return -1;
        if (k >= 0) return put_value(e, v, ts_obj, ts, depth, 1);
    }
    PyObject *data = PyObject_CallOneArg(e->dumps, v);
    if (data == NULL) return -1;
    if (!PyBytes_Check(data)) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "dumps did not return bytes");
        return -1;
    }
    int r = put_byte(e, K_PICKLED) < 0 ? -1 : put_bytes(e, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    Py_DECREF(data);
    return r;
}

static PyObject *encoder_add(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    Encoder *e = (Encoder *)op;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add(ts, idx, body)");
        return NULL;
    }
    PyObject *ts_obj = args[0], *idx = args[1];
    int64_t ts = 0;
    /* all or nothing: a record that cannot be written leaves the chunk as it was */
    Py_ssize_t len0 = e->len, strings0 = PyDict_GET_SIZE(e->strings);
    int64_t prev0 = e->prev;
    if (ts_obj == Py_None) {
        if (put_byte(e, 1) < 0) goto undo;
    } else {
        int overflow = 0;
        long long t = PyLong_CheckExact(ts_obj) ? PyLong_AsLongLongAndOverflow(ts_obj, &overflow) : 0;
        if (t == -1 && PyErr_Occurred()) return NULL;
        if (!PyLong_CheckExact(ts_obj) || overflow || t < -TS_MAX || t >= TS_MAX) {
            PyErr_Format(PyExc_ValueError, "a receive time of %R cannot be stored", ts_obj);
            goto undo;
        }
        ts = (int64_t)t;
        if (put_byte(e, 0) < 0 || put_varint(e, zigzag(ts - e->prev)) < 0) goto undo;
        e->prev = ts;
    }
    Py_ssize_t i = PyLong_CheckExact(idx) ? PyLong_AsSsize_t(idx) : -1;
    if (i < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "a source index of %R cannot be stored", idx);
        goto undo;
    }
    if (put_varint(e, (uint64_t)i) < 0) goto undo;
    if (put_value(e, args[2], ts_obj, ts, 0, 0) < 0) goto undo;
    e->count++;
    Py_RETURN_NONE;
undo:
    e->len = len0;
    e->prev = prev0;
    if (PyDict_GET_SIZE(e->strings) > strings0) { /* the strings this record named first */
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        PyObject *kept = PyDict_New();
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (kept != NULL && PyDict_Next(e->strings, &pos, &key, &value)) {
            if (PyLong_AsSsize_t(value) < strings0 && PyDict_SetItem(kept, key, value) < 0) Py_CLEAR(kept);
        }
        if (kept != NULL) {
            Py_SETREF(e->strings, kept);
        } else { /* no memory even for that: the chunk cannot be trusted, nor written */
            PyErr_Clear();
            e->len = 0;
            e->count = 0;
            e->prev = 0;
            PyDict_Clear(e->strings);
            Py_XDECREF(exc_type);
            Py_XDECREF(exc_value);
            Py_XDECREF(exc_tb);
            PyErr_SetString(PyExc_MemoryError, "a chunk's record half written and not undone");
            return NULL;
        }
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
    return NULL;
}

static PyObject *encoder_take(PyObject *op, PyObject *unused) {
    Encoder *e = (Encoder *)op;
    PyObject *out = PyBytes_FromStringAndSize(e->buf, e->len);
    if (out == NULL) return NULL;
    PyObject *strings = PyDict_New();
    if (strings == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    Py_SETREF(e->strings, strings);
    e->len = 0;
    e->count = 0;
    e->prev = 0;
    return out;
}

static PyObject *encoder_get_count(PyObject *op, void *unused) { return PyLong_FromSsize_t(((Encoder *)op)->count); }

static PyObject *encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *kinds, *enums, *reg, *dumps;
    if (!PyArg_ParseTuple(args, "O!O!OO:Encoder", &PyDict_Type, &kinds, &PyDict_Type, &enums, &reg, &dumps))
        return NULL;
    PyObject *strings = PyDict_New();
    if (strings == NULL) return NULL;
    Encoder *e = (Encoder *)type->tp_alloc(type, 0);
    if (e == NULL) {
        Py_DECREF(strings);
        return NULL;
    }
    e->kinds = Py_NewRef(kinds);
    e->enums = Py_NewRef(enums);
    e->reg = Py_NewRef(reg);
    e->dumps = Py_NewRef(dumps);
    e->strings = strings;
    return (PyObject *)e;
}

static int encoder_traverse(Encoder *e, visitproc visit, void *arg) {
    Py_VISIT(e->kinds);
    Py_VISIT(e->enums);
    Py_VISIT(e->reg);
    Py_VISIT(e->dumps);
    Py_VISIT(e->strings);
    for (Py_ssize_t i = 0; i < e->nfields; i++) {
        Py_VISIT(e->fields[i].type);
        Py_VISIT(e->fields[i].names);
    }
    return 0;
}

static int encoder_clear(Encoder *e) {
    Py_CLEAR(e->kinds);
    Py_CLEAR(e->enums);
    Py_CLEAR(e->reg);
    Py_CLEAR(e->dumps);
    Py_CLEAR(e->strings);
    for (Py_ssize_t i = 0; i < e->nfields; i++) {
        Py_CLEAR(e->fields[i].type);
        Py_CLEAR(e->fields[i].names);
    }
    return 0;
}

static void encoder_dealloc(Encoder *e) {
    PyObject_GC_UnTrack(e);
    encoder_clear(e);
    for (Py_ssize_t i = 0; i < e->nfields; i++) PyMem_Free(e->fields[i].offset);
    PyMem_Free(e->fields);
    PyMem_Free(e->buf);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyMethodDef encoder_methods[] = {
    {"add", (PyCFunction)(void (*)(void))encoder_add, METH_FASTCALL, "add(ts, idx, body): one record."},
    {"take", encoder_take, METH_NOARGS, "take(): the chunk's bytes so far; a new chunk begins."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef encoder_getset[] = {
    {"count", encoder_get_count, NULL, "records since the last take", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tradingd.engine.store._replay.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Encoder(kinds, enums, register, dumps): evformat.PyEncoder, compiled.",
    .tp_new = encoder_new,
    .tp_traverse = (traverseproc)encoder_traverse,
    .tp_clear = (inquiry)encoder_clear,
    .tp_dealloc = (destructor)encoder_dealloc,
    .tp_methods = encoder_methods,
    .tp_getset = encoder_getset,
};

/* -- Records -- */
typedef struct {
    PyObject_HEAD
    PyObject *data; /* bytes */
    const unsigned char *p, *end;
    Py_ssize_t left, sources;
    int64_t prev;
    PyObject *structs, *consts, *loads, *damaged;
    PyObject *strings; /* list: the chunk's table */
    Py_ssize_t *nfields;
} Records;

static int bad(const char *why) {
    PyErr_SetString(PyExc_ValueError, why);
    return -1;
}

static inline int get_byte(Records *r, unsigned char *b) {
    if (r->p >= r->end) return bad("a record runs past its chunk");
    *b = *r->p++;
    return 0;
}

static inline int get_varint(Records *r, uint64_t *out) {
    uint64_t u = 0;
    int shift = 0;
    for (;;) {
        if (r->p >= r->end) return bad("a record runs past its chunk");
        unsigned char b = *r->p++;
        if (shift == 63 && (b & 0x7F) > 1) return bad("a varint longer than 64 bits");
        u |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) break;
        shift += 7;
        if (shift > 63) return bad("a varint longer than 64 bits");
    }
    *out = u;
    return 0;
}

static inline int get_size(Records *r, Py_ssize_t *n) {
    uint64_t u;
    if (get_varint(r, &u) < 0) return -1;
    if (u > (uint64_t)(r->end - r->p)) return bad("a length past the chunk's end");
    *n = (Py_ssize_t)u;
    return 0;
}

static int get_float(Records *r, unsigned char tag, double *x) {
    if (tag == K_F64) {
        if (r->end - r->p < 8) return bad("a record runs past its chunk");
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits |= (uint64_t)r->p[i] << (8 * i);
        r->p += 8;
        memcpy(x, &bits, sizeof bits);
        return 0;
    }
    if (tag >= K_DEC && tag <= K_DEC + MAX_E) {
        uint64_t u;
        if (get_varint(r, &u) < 0) return -1;
        *x = (double)unzigzag(u) / pow10s[tag - K_DEC];
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "tag %d where a float belongs", (int)tag);
    return -1;
}

static PyObject *get_value(Records *r, PyObject *ts_obj, int64_t ts, int depth) {
    unsigned char tag;
    uint64_t u;
    Py_ssize_t n;
    if (get_byte(r, &tag) < 0) return NULL;
    switch (tag) {
    case K_NONE:
        return Py_NewRef(Py_None);
    case K_FALSE:
        return Py_NewRef(Py_False);
    case K_TRUE:
        return Py_NewRef(Py_True);
    case K_INT:
        if (get_varint(r, &u) < 0) return NULL;
        return PyLong_FromLongLong(unzigzag(u));
    case K_TS:
        if (ts_obj == Py_None) return bad("a receive time in a record without one"), NULL;
        return Py_NewRef(ts_obj);
    case K_TSDELTA: {
        int64_t v;
        if (ts_obj == Py_None) return bad("a receive time in a record without one"), NULL;
        if (get_varint(r, &u) < 0) return NULL;
        if (__builtin_add_overflow(ts, unzigzag(u), &v)) return bad("an int past 64 bits"), NULL;
        return PyLong_FromLongLong(v);
    }
    case K_STR: {
        if (get_size(r, &n) < 0) return NULL;
        PyObject *s = PyUnicode_DecodeUTF8((const char *)r->p, n, "strict");
        if (s == NULL) return NULL;
        r->p += n;
        if (PyList_Append(r->strings, s) < 0) {
            Py_DECREF(s);
            return NULL;
        }
        return s;
    }
    case K_REF:
        if (get_varint(r, &u) < 0) return NULL;
        if (u >= (uint64_t)PyList_GET_SIZE(r->strings)) return bad("a string the chunk has not named"), NULL;
        return Py_NewRef(PyList_GET_ITEM(r->strings, (Py_ssize_t)u));
    case K_LEVELS: {
        if (get_size(r, &n) < 0) return NULL;
        PyObject *t = PyTuple_New(n);
        if (t == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned char tp, ts_;
            double price, size;
            if (get_byte(r, &tp) < 0 || get_float(r, tp, &price) < 0 || get_byte(r, &ts_) < 0 ||
                get_float(r, ts_, &size) < 0)
                goto levels_fail;
            PyObject *lvl = PyTuple_New(2);
            if (lvl == NULL) goto levels_fail;
            PyTuple_SET_ITEM(t, i, lvl);
            PyObject *a = PyFloat_FromDouble(price);
            if (a == NULL) goto levels_fail;
            PyTuple_SET_ITEM(lvl, 0, a);
            PyObject *b = PyFloat_FromDouble(size);
            if (b == NULL) goto levels_fail;
            PyTuple_SET_ITEM(lvl, 1, b);
        }
        return t;
    levels_fail:
        Py_DECREF(t);
        return NULL;
    }
    case K_TUPLE: {
        if (depth >= MAX_DEPTH) return bad("values nested too deep"), NULL;
        if (get_size(r, &n) < 0) return NULL;
        PyObject *t = PyTuple_New(n);
        if (t == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *x = get_value(r, ts_obj, ts, depth + 1);
            if (x == NULL) {
                Py_DECREF(t);
                return NULL;
            }
            PyTuple_SET_ITEM(t, i, x);
        }
        return t;
    }
    case K_STRUCT: {
        if (depth >= MAX_DEPTH) return bad("values nested too deep"), NULL;
        if (get_varint(r, &u) < 0) return NULL;
        if (u >= (uint64_t)PyTuple_GET_SIZE(r->structs)) return bad("a class the entry does not list"), NULL;
        PyObject *cls = PyTuple_GET_ITEM(r->structs, (Py_ssize_t)u);
        Py_ssize_t nf = r->nfields[u];
        PyObject *small[24], **args = small;
        small[0] = NULL; /* a class of no field: nothing read */
        if (nf > 24) {
            args = PyMem_Malloc(nf * sizeof(PyObject *));
            if (args == NULL) return PyErr_NoMemory();
        }
        Py_ssize_t got = 0;
        PyObject *out = NULL;
        for (; got < nf; got++) {
            args[got] = get_value(r, ts_obj, ts, depth + 1);
            if (args[got] == NULL) goto struct_done;
        }
        out = PyObject_Vectorcall(cls, args, nf, NULL);
    struct_done:
        for (Py_ssize_t i = 0; i < got; i++) Py_DECREF(args[i]);
        if (args != small) PyMem_Free(args);
        return out;
    }
    case K_CONST:
        if (get_varint(r, &u) < 0) return NULL;
        if (u >= (uint64_t)PyTuple_GET_SIZE(r->consts)) return bad("a constant the entry does not list"), NULL;
        return Py_NewRef(PyTuple_GET_ITEM(r->consts, (Py_ssize_t)u));
    case K_PICKLED: {
        if (get_size(r, &n) < 0) return NULL;
        PyObject *raw = PyBytes_FromStringAndSize((const char *)r->p, n);
        if (raw == NULL) return NULL;
        r->p += n;
        PyObject *out = PyObject_CallOneArg(r->loads, raw);
        Py_DECREF(raw);
        return out;
    }
    default:
        if (tag == K_F64 || (tag >= K_DEC && tag <= K_DEC + MAX_E)) {
            double x;
            if (get_float(r, tag, &x) < 0) return NULL;
            return PyFloat_FromDouble(x);
        }
        PyErr_Format(PyExc_ValueError, "unknown tag %d", (int)tag);
        return NULL;
    }
}

static PyObject *records_next(PyObject *op) {
    Records *r = (Records *)op;
    if (r->left <= 0) return NULL;
    unsigned char flags;
    uint64_t u;
    PyObject *ts_obj = NULL, *idx = NULL, *body = NULL, *rec;
    int64_t ts = 0;
    if (get_byte(r, &flags) < 0) goto fail;
    if (flags == 0) {
        if (get_varint(r, &u) < 0) goto fail;
        if (__builtin_add_overflow(r->prev, unzigzag(u), &ts)) {
            bad("an int past 64 bits");
            goto fail;
        }
        r->prev = ts;
        ts_obj = PyLong_FromLongLong(ts);
        if (ts_obj == NULL) goto fail;
    } else if (flags == 1) {
        ts_obj = Py_NewRef(Py_None);
    } else {
        PyErr_Format(PyExc_ValueError, "a record's flags %d", (int)flags);
        goto fail;
    }
    if (get_varint(r, &u) < 0) goto fail;
    if (u >= (uint64_t)r->sources) {
        PyErr_Format(PyExc_ValueError, "a record of source %llu (of %zd)", (unsigned long long)u, r->sources);
        goto fail;
    }
    idx = PyLong_FromSsize_t((Py_ssize_t)u);
    if (idx == NULL) goto fail;
    body = get_value(r, ts_obj, ts, 0);
    if (body == NULL) goto fail;
    if (r->left == 1 && r->p != r->end) {
        bad("bytes after the chunk's last record");
        goto fail;
    }
    rec = PyTuple_New(3);
    if (rec == NULL) goto fail;
    PyTuple_SET_ITEM(rec, 0, ts_obj);
    PyTuple_SET_ITEM(rec, 1, idx);
    PyTuple_SET_ITEM(rec, 2, body);
    r->left--;
    return rec;
fail:
    r->left = 0;
    Py_XDECREF(ts_obj);
    Py_XDECREF(idx);
    Py_XDECREF(body);
    return raise_damaged(r->damaged, NULL, NULL);
}

static PyObject *records_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *data, *structs, *consts, *loads, *damaged;
    Py_ssize_t pos, count, sources;
    if (!PyArg_ParseTuple(args, "O!nnnO!O!OO:Records", &PyBytes_Type, &data, &pos, &count, &sources, &PyTuple_Type,
                          &structs, &PyTuple_Type, &consts, &loads, &damaged))
        return NULL;
    /* Said as ValueError (the caller's damage), as evformat.py_records says it before any record. */
    if (pos < 0 || pos > PyBytes_GET_SIZE(data) || count < 0) {
        PyErr_SetString(PyExc_ValueError, "a chunk's records start past its end");
        return NULL;
    }
    if (count == 0 && pos != PyBytes_GET_SIZE(data)) {
        PyErr_SetString(PyExc_ValueError, "bytes after the chunk's last record");
        return NULL;
    }
    Py_ssize_t ns = PyTuple_GET_SIZE(structs);
    Py_ssize_t *nfields = PyMem_Malloc((ns ? ns : 1) * sizeof(Py_ssize_t));
    if (nfields == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *f = PyObject_GetAttrString(PyTuple_GET_ITEM(structs, i), "__struct_fields__");
        if (f == NULL || !PyTuple_Check(f)) {
            Py_XDECREF(f);
            PyMem_Free(nfields);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a struct class without __struct_fields__");
            return NULL;
        }
        nfields[i] = PyTuple_GET_SIZE(f);
        Py_DECREF(f);
    }
    PyObject *strings = PyList_New(0);
    if (strings == NULL) {
        PyMem_Free(nfields);
        return NULL;
    }
    Records *r = (Records *)type->tp_alloc(type, 0);
    if (r == NULL) {
        Py_DECREF(strings);
        PyMem_Free(nfields);
        return NULL;
    }
    r->data = Py_NewRef(data);
    r->p = (const unsigned char *)PyBytes_AS_STRING(data) + pos;
    r->end = (const unsigned char *)PyBytes_AS_STRING(data) + PyBytes_GET_SIZE(data);
    r->left = count;
    r->sources = sources;
    r->structs = Py_NewRef(structs);
    r->consts = Py_NewRef(consts);
    r->loads = Py_NewRef(loads);
    r->damaged = Py_NewRef(damaged);
    r->strings = strings;
    r->nfields = nfields;
    return (PyObject *)r;
}

static int records_traverse(Records *r, visitproc visit, void *arg) {
    Py_VISIT(r->data);
    Py_VISIT(r->structs);
    Py_VISIT(r->consts);
    Py_VISIT(r->loads);
    Py_VISIT(r->damaged);
    Py_VISIT(r->strings);
    return 0;
}

static int records_clear(Records *r) {
    Py_CLEAR(r->data);
    Py_CLEAR(r->structs);
    Py_CLEAR(r->consts);
    Py_CLEAR(r->loads);
    Py_CLEAR(r->damaged);
    Py_CLEAR(r->strings);
    r->left = 0;
    return 0;
}

static void records_dealloc(Records *r) {
    PyObject_GC_UnTrack(r);
    records_clear(r);
    PyMem_Free(r->nfields);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static PyTypeObject RecordsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tradingd.engine.store._replay.Records",
    .tp_basicsize = sizeof(Records),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Records(data, pos, count, sources, structs, consts, loads, damaged): evformat.py_records, compiled.",
    .tp_new = records_new,
    .tp_traverse = (traverseproc)records_traverse,
    .tp_clear = (inquiry)records_clear,
    .tp_dealloc = (destructor)records_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = records_next,
};

/* -- the recording reader's lines (recording.py, RecordingReader) -------------------------------
 * `scan_lines(buf, pos, end, prefix, base, tag, limit)` is the fast path of the reader's line loop
 * (`RecordingReader._read_reference`, the reference) over the lines of `buf[pos:end]` (`end` just
 * past a `\n`): a line (less one `\r` before its `\n`) `YYYY-MM-DDTHH:MM:SS.fffffffZ <frame>`
 * whose first 20 bytes are `prefix` (the cached second, `base` its ns) is `(base + f * 100,
 * frame)`; one of another second, spelled as the recorder spells it (every field at full width,
 * a real date, the hand path of `_seconds`), is parsed here and becomes the cache. Each is
 * `(ts, frame)`, or `(ts, tag, frame)` when `tag` is not None. It stops at the first line it
 * does not take (any other line: the Python loop takes it, exactly as before), at `end`, or after
 * `limit` lines, and returns `(items, pos, prefix, base)`: the tuples of the lines taken, one a
 * line (so a line's number is its place in the list), where the next line starts, and the cache
 * after them. A time past int64 is not taken either (Python's ints carry it), nor a cached second
 * of another spelling (strptime's: the Python loop's). */

static inline int all_digits(const unsigned char *p, int n) {
    for (int i = 0; i < n; i++)
        if ((unsigned)(p[i] - '0') > 9u) return 0;
    return 1;
}

static inline int64_t digits_value(const unsigned char *p, int n) {
    int64_t v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (p[i] - '0');
    return v;
}

/* `_seconds(p[:19])` where it parses by hand (recording.py): 1 and the seconds, else 0 (strptime
 * decides there: the Python loop takes the line). */
static int hand_seconds(const unsigned char *p, int64_t *out) {
    if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':') return 0;
    if (!all_digits(p, 4) || !all_digits(p + 5, 2) || !all_digits(p + 8, 2) || !all_digits(p + 11, 2) ||
        !all_digits(p + 14, 2) || !all_digits(p + 17, 2))
        return 0;
    int64_t y = digits_value(p, 4), m = digits_value(p + 5, 2), d = digits_value(p + 8, 2);
    int64_t hh = digits_value(p + 11, 2), mm = digits_value(p + 14, 2), ss = digits_value(p + 17, 2);
    /* strptime's ranges (seconds up to 61: leap seconds carried into the next minute) */
    if (y == 0 || hh >= 24 || mm >= 60 || ss >= 62 || m < 1 || m > 12 || d < 1) return 0;
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > month_days[m - 1] + (m == 2 && leap)) return 0; /* datetime.date's ValueError */
    /* days since 1970-01-01 in the proleptic Gregorian calendar (date.toordinal's) */
    int64_t yy = y - (m <= 2);
    int64_t era = yy / 400; /* yy >= 0: years 1-9999 */
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    *out = days * 86400 + hh * 3600 + mm * 60 + ss;
    return 1;
}

static PyObject *scan_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "scan_lines(buf, pos, end, prefix, base, tag, limit)");
        return NULL;
    }
    PyObject *buf = args[0], *prefix = args[3], *base = args[4], *tag = args[5];
    if (!PyBytes_Check(buf) || !PyBytes_Check(prefix) || !PyLong_Check(base)) {
        PyErr_SetString(PyExc_TypeError, "scan_lines: buf and prefix bytes, base an int");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    if (end == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[6]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    if (pos < 0 || end < pos || end > PyBytes_GET_SIZE(buf) || limit < 0) {
        PyErr_SetString(PyExc_ValueError, "scan_lines: need 0 <= pos <= end <= len(buf), limit >= 0");
        return NULL;
    }
    /* The cache: `prefix` and `base`, when the prefix is one this scan would make (20 bytes, the
     * recorder's spelling: no space in it, so a line's time is its first word's, as `_line_ts`
     * reads it) and base an int64; else nothing matches it. */
    int overflow = 0;
    long long cbase = PyLong_AsLongLongAndOverflow(base, &overflow);
    if (cbase == -1 && PyErr_Occurred()) return NULL;
    unsigned char pfx[20];
    int64_t unused;
    int cached = !overflow && PyBytes_GET_SIZE(prefix) == 20;
    if (cached) {
        memcpy(pfx, PyBytes_AS_STRING(prefix), 20);
        cached = pfx[19] == '.' && hand_seconds(pfx, &unused);
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(buf);
    PyObject *items = PyList_New(0), *new_prefix = NULL;
    if (items == NULL) return NULL;
    int64_t b = cbase;
    Py_ssize_t p = pos, taken = 0;
    while (p < end && taken < limit) {
        const unsigned char *line = s + p;
        const unsigned char *nl = memchr(line, '\n', (size_t)(end - p));
        if (nl == NULL) break; /* no whole line left: the caller's */
        Py_ssize_t len = nl - line;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (len < 29 || line[27] != 'Z' || line[28] != ' ' || !all_digits(line + 20, 7)) break;
        int64_t ts, frac = digits_value(line + 20, 7) * 100, line_base;
        int same = cached && memcmp(line, pfx, 20) == 0;
        if (same) {
            line_base = b;
        } else {
            int64_t sec;
            if (line[19] != '.' || !hand_seconds(line, &sec) || __builtin_mul_overflow(sec, (int64_t)1000000000, &line_base))
                break;
        }
        if (__builtin_add_overflow(line_base, frac, &ts)) break;
        if (!same) { /* the new cache, as the Python loop makes it */
            PyObject *np = PyBytes_FromStringAndSize((const char *)line, 20);
            if (np == NULL) goto fail;
            Py_XSETREF(new_prefix, np);
            memcpy(pfx, line, 20);
            b = line_base;
            cached = 1;
        }
        PyObject *t = PyTuple_New(tag == Py_None ? 2 : 3);
        if (t == NULL) goto fail;
        PyObject *ts_obj = PyLong_FromLongLong(ts);
        if (ts_obj == NULL) {
            Py_DECREF(t);
            goto fail;
        }
        PyTuple_SET_ITEM(t, 0, ts_obj);
        PyObject *frame = PyBytes_FromStringAndSize((const char *)line + 29, len - 29);
        if (frame == NULL) {
            Py_DECREF(t);
            goto fail;
        }
        if (tag == Py_None) {
            PyTuple_SET_ITEM(t, 1, frame);
        } else {
            PyTuple_SET_ITEM(t, 1, Py_NewRef(tag));
            PyTuple_SET_ITEM(t, 2, frame);
        }
        int r = PyList_Append(items, t);
        Py_DECREF(t);
        if (r < 0) goto fail;
        taken++;
        p = (nl - s) + 1;
    }
    PyObject *out = PyTuple_New(4), *pos_obj = NULL, *base_obj = NULL;
    if (out == NULL) goto fail;
    pos_obj = PyLong_FromSsize_t(p);
    base_obj = new_prefix == NULL ? Py_NewRef(base) : PyLong_FromLongLong(b);
    if (pos_obj == NULL || base_obj == NULL) {
        Py_DECREF(out);
        Py_XDECREF(pos_obj);
        Py_XDECREF(base_obj);
        goto fail;
    }
    PyTuple_SET_ITEM(out, 0, items);
    PyTuple_SET_ITEM(out, 1, pos_obj);
    PyTuple_SET_ITEM(out, 2, new_prefix == NULL ? Py_NewRef(prefix) : new_prefix);
    PyTuple_SET_ITEM(out, 3, base_obj);
    return out;
fail:
    Py_DECREF(items);
    Py_XDECREF(new_prefix);
    return NULL;
}

/* Hooks for tests/store/test_type_cache.py: `_typecache.h`'s two operations, as compiled here. */
static PyObject *type_version(PyObject *module, PyObject *type) {
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "type_version(cls): a class");
        return NULL;
    }
    return PyLong_FromUnsignedLong(tc_version((PyTypeObject *)type));
}

static PyObject *type_lookup(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyType_Check(args[0]) || !PyUnicode_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "type_lookup(cls, name): a class and a str");
        return NULL;
    }
    PyObject *found = tc_lookup((PyTypeObject *)args[0], args[1]); /* borrowed */
    return found != NULL ? PyTuple_Pack(1, found) : PyTuple_New(0);
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_O, "setup(OrderBook): the class whose exact instances are updated in C."},
    {"update", (PyCFunction)(void (*)(void))update, METH_FASTCALL,
     "update(book, bids, asks): OrderBook.update, compiled for an exact OrderBook and shaped levels."},
    {"scan_lines", (PyCFunction)(void (*)(void))scan_lines, METH_FASTCALL,
     "scan_lines(buf, pos, end, prefix, base, tag, limit): the recording reader's fast lines, compiled."},
    {"type_version", type_version, METH_O,
     "type_version(cls) -> int: the class's version tag as the compiled modules trust it, 0 for none "
     "(engine/_typecache.h tc_version; a test hook)."},
    {"type_lookup", (PyCFunction)(void (*)(void))type_lookup, METH_FASTCALL,
     "type_lookup(cls, name) -> (value,) | (): `name` in the dictionaries of the class's MRO, the "
     "class given a version tag (engine/_typecache.h tc_lookup; a test hook)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_replay", NULL, -1, methods};

#define INTERN(var, text)                                  \
    do {                                                   \
        if ((var = PyUnicode_InternFromString(text)) == NULL) \
            return NULL;                                   \
    } while (0)

PyMODINIT_FUNC PyInit__replay(void) {
    INTERN(s_stats, "stats");
    INTERN(s_books, "_books");
    INTERN(s_frames, "frames");
    INTERN(s_events, "events");
    INTERN(s_instrument, "instrument");
    INTERN(s_snapshot, "snapshot");
    INTERN(s_bids, "bids");
    INTERN(s_asks, "asks");
    INTERN(s_sequence, "sequence");
    INTERN(s_clear, "clear");
    INTERN(s_valid, "valid");
    INTERN(s_update, "update");
    INTERN(s_inv, "_inv");
    INTERN(s_bb, "_bb");
    INTERN(s_ba, "_ba");
    INTERN(s_pop, "pop");
    INTERN(s_damaged, "damaged");
    INTERN(s_apply, "apply");
    if ((one = PyLong_FromLong(1)) == NULL) return NULL;
    book_names[B_INV] = s_inv;
    book_names[B_BIDS] = s_bids;
    book_names[B_BB] = s_bb;
    book_names[B_ASKS] = s_asks;
    book_names[B_BA] = s_ba;
    book_names[B_SEQUENCE] = s_sequence;
    book_names[B_VALID] = s_valid;
    owner_names[O_STATS] = s_stats;
    owner_names[O_BOOKS] = s_books;
    stats_names[S_FRAMES] = s_frames;
    stats_names[S_EVENTS] = s_events;
    event_names[E_INSTRUMENT] = s_instrument;
    event_names[E_SNAPSHOT] = s_snapshot;
    event_names[E_BIDS] = s_bids;
    event_names[E_ASKS] = s_asks;
    event_names[E_SEQUENCE] = s_sequence;
    PyObject *builtins = PyEval_GetBuiltins(); /* borrowed */
    py_max = Py_XNewRef(PyDict_GetItemString(builtins, "max"));
    py_min = Py_XNewRef(PyDict_GetItemString(builtins, "min"));
    if (py_max == NULL || py_min == NULL) return NULL;
    if (PyType_Ready(&ReplayType) < 0 || PyType_Ready(&EncoderType) < 0 || PyType_Ready(&RecordsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Replay", (PyObject *)&ReplayType) < 0 ||
        PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0 ||
        PyModule_AddObjectRef(m, "Records", (PyObject *)&RecordsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
