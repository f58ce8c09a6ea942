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
 * event, counter and book after each record.
 *
 * `update(book, bids, asks)` is `OrderBook.update` for an exact `OrderBook` (the class given to
 * `setup`, while its
 * `update` is the function defined there) and levels given as exact tuples of exact (float,
 * float) tuples, as the unpickler and the decoders make them; anything else calls the method.
 * The same operations in the same order as the Python code, on the same objects: ticks are
 * `round(price * inverse)` as Python rounds (half to even, through `PyLong_FromDouble`: NaN a
 * ValueError, an infinity an OverflowError), a level is set, popped and compared through the
 * dict and object API (a key planted in a book by a strategy runs its own code there, as in
 * Python), the book's slots read and written through the attribute protocol at the points the
 * Python method reads and writes them; every reference used is held.
 *
 * An exception but the `malformed` class on these records is the entry's damage: what
 * `owner.damaged(exc)` returns is raised from it, as the Python method does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h> /* offsetof */

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

/* `max(levels) if levels else None` (`min` when `op` is Py_LT): a new reference. Exact int keys
 * are compared in C (no code runs, nothing allocates: the dict cannot change under the scan);
 * at the first key of another type, the builtin over the dict from its start, as Python. */
static PyObject *extreme(PyObject *levels, int op) {
    if (PyDict_CheckExact(levels)) {
        if (PyDict_GET_SIZE(levels) == 0) return Py_NewRef(Py_None);
        PyObject *key, *value, *m = NULL;
        Py_ssize_t pos = 0;
        while (PyDict_Next(levels, &pos, &key, &value)) {
            if (!PyLong_CheckExact(key)) goto builtin;
            if (m == NULL) {
                m = key;
                continue;
            }
            int better = PyObject_RichCompareBool(key, m, op);
            if (better < 0) return NULL;
            if (better) m = key;
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
                better = PyObject_RichCompareBool(t, best, op);
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
                int eq = PyObject_RichCompareBool(t, best, Py_EQ);
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

static PyTypeObject *order_book_type = NULL; /* the exact OrderBook (`setup`); NULL: every book the method's */
static PyObject *order_book_update = NULL;   /* OrderBook.update as defined (a patched one is called) */

/* `book.update(bids, asks)`: 0, or -1 with an exception set. */
static int update_book(PyObject *book, PyObject *bids, PyObject *asks) {
    PyObject *inv_obj = NULL;
    if (order_book_type == NULL || Py_TYPE(book) != order_book_type || !levels_shaped(bids) ||
        !levels_shaped(asks) || _PyType_Lookup(order_book_type, s_update) != order_book_update)
        goto method;
    /* `inv = self._inv`: a float, or the method (which multiplies by whatever it is) */
    inv_obj = PyObject_GetAttr(book, s_inv);
    if (inv_obj == NULL) return -1;
    if (!PyFloat_CheckExact(inv_obj)) {
        Py_DECREF(inv_obj);
        goto method;
    }
    double inv = PyFloat_AS_DOUBLE(inv_obj);
    Py_DECREF(inv_obj);
    Py_INCREF(bids);
    Py_INCREF(asks);
    int rc = -1;
    /* `levels = self.bids; best = self._bb`, the loop, `self._bb = ...` */
    PyObject *levels = PyObject_GetAttr(book, s_bids), *best = NULL;
    if (levels == NULL) goto done;
    best = PyObject_GetAttr(book, s_bb);
    if (best == NULL) {
        Py_DECREF(levels);
        goto done;
    }
    best = update_side(levels, best, bids, inv, Py_GT);
    if (best == NULL) goto done;
    if (PyObject_SetAttr(book, s_bb, best) < 0) {
        Py_DECREF(best);
        goto done;
    }
    Py_DECREF(best);
    /* `levels = self.asks; best = self._ba`, the loop, `self._ba = ...` */
    levels = PyObject_GetAttr(book, s_asks);
    if (levels == NULL) goto done;
    best = PyObject_GetAttr(book, s_ba);
    if (best == NULL) {
        Py_DECREF(levels);
        goto done;
    }
    best = update_side(levels, best, asks, inv, Py_LT);
    if (best == NULL) goto done;
    rc = PyObject_SetAttr(book, s_ba, best);
    Py_DECREF(best);
done:
    Py_DECREF(bids);
    Py_DECREF(asks);
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
    PyObject *fn = _PyType_Lookup((PyTypeObject *)type, s_update); /* borrowed */
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
typedef struct {
    PyObject_HEAD
    PyObject *owner;     /* the ReplayDecoder */
    PyObject *classes;   /* frozenset of the entry's event classes */
    PyObject *book_update;
    PyObject *malformed; /* MalformedFrame: raised as it is */
    PyObject *method;    /* type(owner).apply: the reference, for every other record */
    vectorcallfunc vectorcall;
} Replay;

/* `stats.<name> += n` */
static int bump(PyObject *stats, PyObject *name, PyObject *n) {
    PyObject *v = PyObject_GetAttr(stats, name);
    if (v == NULL) return -1;
    PyObject *w = PyNumber_InPlaceAdd(v, n);
    Py_DECREF(v);
    if (w == NULL) return -1;
    int r = PyObject_SetAttr(stats, name, w);
    Py_DECREF(w);
    return r;
}

/* One BookUpdate applied to `books` (the owner's dict): 0, or -1. */
static int apply_book(PyObject *books, PyObject *ev) {
    PyObject *inst = PyObject_GetAttr(ev, s_instrument);
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
    PyObject *snap = PyObject_GetAttr(ev, s_snapshot);
    if (snap == NULL) goto done;
    int is_snap = PyObject_IsTrue(snap);
    Py_DECREF(snap);
    if (is_snap < 0) goto done;
    if (is_snap) {
        PyObject *r = PyObject_CallMethodNoArgs(book, s_clear);
        if (r == NULL) goto done;
        Py_DECREF(r);
        if (PyObject_SetAttr(book, s_valid, Py_True) < 0) goto done;
    }
    bids = PyObject_GetAttr(ev, s_bids);
    if (bids == NULL) goto done;
    asks = PyObject_GetAttr(ev, s_asks);
    if (asks == NULL) goto done;
    if (update_book(book, bids, asks) < 0) goto done;
    seq = PyObject_GetAttr(ev, s_sequence);
    if (seq == NULL) goto done;
    rc = PyObject_SetAttr(book, s_sequence, seq);
done:
    Py_XDECREF(bids);
    Py_XDECREF(asks);
    Py_XDECREF(seq);
    Py_DECREF(book);
    return rc;
}

/* The entry's damage: `raise owner.damaged(exc) from exc` (MalformedFrame as it is), as the
   Python replay's `except Exception`: what is not an Exception (KeyboardInterrupt, SystemExit,
   a generator's exit) says nothing of the entry and goes through as it is. */
static PyObject *damaged(Replay *self) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value == NULL || !PyErr_GivenExceptionMatches(type, PyExc_Exception) ||
        PyErr_GivenExceptionMatches(type, self->malformed)) {
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    if (tb != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(tb);
    Py_DECREF(type);
    PyObject *fn = PyObject_GetAttr(self->owner, s_damaged);
    PyObject *exc = fn == NULL ? NULL : PyObject_CallOneArg(fn, value);
    Py_XDECREF(fn);
    if (exc == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyException_SetContext(exc, Py_NewRef(value));
    PyException_SetCause(exc, value); /* steals; sets __suppress_context__ */
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
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
    PyObject *events;
    int known = PySet_Contains(self->classes, (PyObject *)Py_TYPE(body));
    if (known < 0) return NULL;
    if (known) {
        events = PyList_New(1);
        if (events == NULL) return NULL;
        PyList_SET_ITEM(events, 0, Py_NewRef(body));
    } else if (PyTuple_CheckExact(body)) {
        Py_ssize_t n = PyTuple_GET_SIZE(body);
        for (Py_ssize_t i = 0; i < n; i++) {
            int k = PySet_Contains(self->classes, (PyObject *)Py_TYPE(PyTuple_GET_ITEM(body, i)));
            if (k < 0) return NULL;
            if (!k) goto reference; /* the reference says what is wrong */
        }
        events = PyList_New(n);
        if (events == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(events, i, Py_NewRef(PyTuple_GET_ITEM(body, i)));
    } else {
        goto reference;
    }
    /* `stats = self.stats; stats.frames += 1; stats.events += len(events)` */
    PyObject *stats = PyObject_GetAttr(self->owner, s_stats);
    if (stats == NULL) goto fail;
    PyObject *count = PyLong_FromSsize_t(PyList_GET_SIZE(events));
    if (count == NULL || bump(stats, s_frames, one) < 0 || bump(stats, s_events, count) < 0) {
        Py_XDECREF(count);
        Py_DECREF(stats);
        goto fail;
    }
    Py_DECREF(count);
    Py_DECREF(stats);
    /* `books = self._books; if books: ...` */
    PyObject *books = PyObject_GetAttr(self->owner, s_books);
    if (books == NULL) goto fail;
    int any = PyObject_IsTrue(books);
    if (any < 0) {
        Py_DECREF(books);
        goto fail;
    }
    if (any) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(events); i++) {
            PyObject *ev = PyList_GET_ITEM(events, i);
            if ((PyObject *)Py_TYPE(ev) != self->book_update) continue;
            Py_INCREF(ev);
            int r = apply_book(books, ev);
            Py_DECREF(ev);
            if (r < 0) {
                Py_DECREF(books);
                goto fail;
            }
        }
    }
    Py_DECREF(books);
    return events;
fail:
    Py_DECREF(events);
    return damaged(self);
reference:;
    PyObject *call[3] = {self->owner, body, args[1]};
    return PyObject_Vectorcall(self->method, call, 3, NULL);
}

static PyObject *replay_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *owner, *classes, *book_update, *malformed;
    if (!PyArg_ParseTuple(args, "OO!OO:Replay", &owner, &PyFrozenSet_Type, &classes, &book_update, &malformed))
        return NULL;
    PyObject *method = PyObject_GetAttr((PyObject *)Py_TYPE(owner), s_apply);
    if (method == NULL) return NULL;
    Replay *self = (Replay *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(method);
        return NULL;
    }
    self->owner = Py_NewRef(owner);
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
    return 0;
}

static int replay_clear(Replay *self) {
    Py_CLEAR(self->owner);
    Py_CLEAR(self->classes);
    Py_CLEAR(self->book_update);
    Py_CLEAR(self->malformed);
    Py_CLEAR(self->method);
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

static PyMethodDef methods[] = {
    {"setup", setup, METH_O, "setup(OrderBook): the class whose exact instances are updated in C."},
    {"update", (PyCFunction)(void (*)(void))update, METH_FASTCALL,
     "update(book, bids, asks): OrderBook.update, compiled for an exact OrderBook and shaped levels."},
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
    PyObject *builtins = PyEval_GetBuiltins(); /* borrowed */
    py_max = Py_XNewRef(PyDict_GetItemString(builtins, "max"));
    py_min = Py_XNewRef(PyDict_GetItemString(builtins, "min"));
    if (py_max == NULL || py_min == NULL) return NULL;
    if (PyType_Ready(&ReplayType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Replay", (PyObject *)&ReplayType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
