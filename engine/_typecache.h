/* What the compiled modules learn of a class, kept while the class is unchanged (issue 17): the
 * offsets of its slots, what an attribute name is on it, whether it leaves an attribute to its
 * instance dict (connectors/deribit/_fast.c and _json.h, engine/store/_replay.c,
 * engine/backtest/_kernel.c, each compiled with this header). Two operations of CPython's own
 * attribute cache, the only place they touch it:
 *
 * - `tc_version(type)`: the class's version tag, or 0 when it has none valid. CPython gives a
 *   class a tag when it looks an attribute up on it, and clears it when an attribute of the class
 *   or of a base is set or deleted (PyType_Modified); a tag is never given again. So a value
 *   learnt with a tag holds while the class has that tag. `tp_version_tag` is a field of the
 *   PyTypeObject struct of every version (2.6 on); what says it is valid is not: through 3.12
 *   the flag Py_TPFLAGS_VALID_VERSION_TAG (a failed assignment can leave a tag without it,
 *   which PyType_Modified then does not clear); from 3.13 the flag is unused (never set: its
 *   header says "Unused. Legacy flag") and a tag is valid when it is not 0.
 *   tests/store/test_type_cache.py.
 *
 * - `tc_lookup(type, name)`: `name` on the class or on a base, in its MRO, as the class's
 *   dictionaries hold it (no descriptor run), borrowed (it lives while the dictionary holding it
 *   does not drop it), or NULL: what `_PyType_Lookup` answers, and like it the class is given a
 *   version tag (when it can have one), so the caller reads `tc_version` after its lookups. NULL
 *   is "not there" or "the lookup raised" (a key of a class dictionary, a str subclass say, whose
 *   `__eq__` raised): the exception is cleared, as `_PyType_Lookup` clears it, and Python's own
 *   attribute lookup then goes on as if the class had no such name; every caller takes NULL so
 *   too (no slot: the attribute protocol; `_json.h` `json_plain_class`: the instance dict
 *   decides). A lookup that raised gives the class no tag (as 3.11's and 3.12's `_PyType_Lookup`;
 *   3.13's gives one but caches no answer after an error, which a caller here cannot tell from
 *   the tag): a class no other lookup tagged stays untrusted (`tc_version` 0), and what its
 *   caller learnt is taken again at the next use. One tagged by an earlier lookup, or by a later
 *   one of the same caller, keeps its tag (as with `_PyType_Lookup`, which does not say it
 *   raised), and the caller's NULL stands while it holds: Python's answer then, which only a key
 *   whose `__eq__` raises at one time and not at another can change. The caller has no
 *   exception pending (asserted: the walk takes an error it sees for its own). From
 *   3.12 it is public API (`PyType_GetDict`, new in 3.12; `PyUnstable_Type_AssignVersionTag`, in
 *   the unstable tier since 3.12); 3.11 has neither, and takes `_PyType_Lookup` (private; 3.11's
 *   API no longer changes). tests/store/test_type_cache.py. */
#ifndef TRADINGD_TYPECACHE_H
#define TRADINGD_TYPECACHE_H

#include <Python.h>

static inline unsigned int tc_version(PyTypeObject *type) {
#if PY_VERSION_HEX < 0x030D0000
    if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) return 0;
#endif
    return type->tp_version_tag;
}

static inline PyObject *tc_lookup(PyTypeObject *type, PyObject *name) {
    assert(!PyErr_Occurred()); /* as `_PyType_Lookup` asserts: an error seen below is the walk's */
#if PY_VERSION_HEX >= 0x030C0000
    /* `find_name_in_mro`'s walk: each class's own dictionary, in MRO order, the MRO held while
     * a lookup may run code (a key's `__eq__`) that replaces it. */
    PyObject *mro = type->tp_mro, *found = NULL;
    if (mro == NULL || !PyTuple_Check(mro)) return NULL; /* not ready: nothing to find */
    Py_INCREF(mro);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyObject *base = PyTuple_GET_ITEM(mro, i);
        if (!PyType_Check(base)) continue;
        PyObject *dict = PyType_GetDict((PyTypeObject *)base); /* NULL, no exception: none */
        if (dict == NULL) continue;
        found = PyDict_GetItemWithError(dict, name); /* borrowed */
        Py_DECREF(dict);                             /* the class holds it */
        if (found != NULL) break;
        if (PyErr_Occurred()) { /* the lookup raised: NULL, and no tag for an answer not had */
            PyErr_Clear();
            Py_DECREF(mro);
            return NULL;
        }
    }
    Py_DECREF(mro);
    (void)PyUnstable_Type_AssignVersionTag(type); /* after the walk, as `_PyType_Lookup` does */
    return found;
#else
    return _PyType_Lookup(type, name);
#endif
}

#endif
