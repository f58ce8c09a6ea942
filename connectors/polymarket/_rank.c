/* The catalog's search ranking with the words' document frequencies known in advance.
 *
 * SQLite's FTS5 `bm25()` counts, for every query, how many markets contain each word by walking
 * the word's whole posting list (`xQueryPhrase`): at 300,000 markets that is most of a search's
 * time for common words ("will", "et", "12" are in most descriptions). `bm25idf()` is the same
 * function (fts5_aux.c `fts5Bm25Function`, SQLite 3.40 to 3.53, the same arithmetic in the same
 * order, so the same doubles) except that each phrase's idf is handed in, computed from the
 * counts the index keeps (`terms`). `Ranker` is a read-only connection to the index with that
 * function registered; `rows()` runs one ranking statement with the GIL released. The
 * pure-Python path (`bm25()` through the standard library's sqlite3) stays the reference that
 * tests/connectors/polymarket/test_catalog_rank.py compares this with.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sqlite3.h>
#include <limits.h>
#include <string.h>

#define MAX_PHRASES 64

typedef struct {
    double avgdl;
} AvgData;

/* Each market's token count (all columns), by rowid: what xColumnSize(-1) reads from the
 * index's docsize table with one B-tree lookup per row, loaded once when the Ranker opens. */
typedef struct {
    unsigned int *sizes;
    sqlite3_int64 n;
} Sizes;

static void bm25idf(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int nVal,
                    sqlite3_value **apVal) {
    const double k1 = 1.2; /* the constants of fts5Bm25Function */
    const double b = 0.75;
    int rc = SQLITE_OK;
    AvgData *p = (AvgData *)api->xGetAuxdata(fts, 0);
    if (p == 0) {
        sqlite3_int64 nRow = 0, nToken = 0;
        p = sqlite3_malloc(sizeof(AvgData));
        if (p == 0) {
            sqlite3_result_error_nomem(ctx);
            return;
        }
        rc = api->xRowCount(fts, &nRow);
        if (rc == SQLITE_OK) rc = api->xColumnTotalSize(fts, -1, &nToken);
        p->avgdl = (double)nToken / (double)nRow;
        if (rc == SQLITE_OK) {
            rc = api->xSetAuxdata(fts, p, sqlite3_free);
        } else {
            sqlite3_free(p);
        }
        if (rc != SQLITE_OK) {
            sqlite3_result_error_code(ctx, rc);
            return;
        }
    }
    int nPhrase = api->xPhraseCount(fts);
    if (nPhrase > MAX_PHRASES || nVal < 1 ||
        sqlite3_value_bytes(apVal[0]) != (int)(nPhrase * sizeof(double))) {
        sqlite3_result_error(ctx, "bm25idf: pass one idf (a native double) per phrase", -1);
        return;
    }
    double aIDF[MAX_PHRASES];
    memcpy(aIDF, sqlite3_value_blob(apVal[0]), nPhrase * sizeof(double));
    double aFreq[MAX_PHRASES];
    memset(aFreq, 0, sizeof(double) * nPhrase);
    /* bm25() adds up the weights of the instances xInst lists: every phrase's positions merged
     * into one array per row, in (column, offset) order. Each phrase's own position list holds
     * the same instances in the same order, so the sums are the same doubles, without the merge. */
    for (int i = 0; rc == SQLITE_OK && i < nPhrase; i++) {
        Fts5PhraseIter iter;
        int ic, io;
        rc = api->xPhraseFirst(fts, i, &iter, &ic, &io);
        while (rc == SQLITE_OK && ic >= 0) {
            aFreq[i] += (nVal - 1 > ic) ? sqlite3_value_double(apVal[ic + 1]) : 1.0;
            api->xPhraseNext(fts, &iter, &ic, &io);
        }
    }
    double D = 0.0;
    if (rc == SQLITE_OK) {
        const Sizes *sizes = (const Sizes *)api->xUserData(fts);
        sqlite3_int64 id = api->xRowid(fts);
        if (sizes != 0 && id >= 0 && id < sizes->n && sizes->sizes[id] != UINT_MAX) {
            D = (double)(int)sizes->sizes[id];
        } else {
            int nTok = 0;
            rc = api->xColumnSize(fts, -1, &nTok);
            D = (double)nTok;
        }
    }
    if (rc != SQLITE_OK) {
        sqlite3_result_error_code(ctx, rc);
        return;
    }
    double score = 0.0;
    for (int i = 0; i < nPhrase; i++) {
        score += aIDF[i] * ((aFreq[i] * (k1 + 1.0)) / (aFreq[i] + k1 * (1 - b + b * D / p->avgdl)));
    }
    sqlite3_result_double(ctx, -1.0 * score);
}

typedef struct {
    PyObject_HEAD sqlite3 *db;
    Sizes sizes;
    int busy; /* rows() running with the GIL released: the connection and sizes stay until they end */
} Ranker;

/* The sum of the varints of one docsize record (fts5: one per column, SQLite's varint format). */
static int docsize_total(const unsigned char *a, int n, unsigned int *out) {
    sqlite3_uint64 total = 0;
    int i = 0;
    while (i < n) {
        sqlite3_uint64 v = 0;
        int k = 0;
        for (;;) {
            if (i >= n) return -1;
            unsigned char c = a[i++];
            if (k == 8) {
                v = (v << 8) | c;
                break;
            }
            v = (v << 7) | (c & 0x7f);
            k++;
            if (!(c & 0x80)) break;
        }
        total += v;
    }
    if (total >= UINT_MAX) return -1;
    *out = (unsigned int)total;
    return 0;
}

/* Load every row's token count; on any surprise leave `sizes` empty (xColumnSize then). */
static void load_sizes(sqlite3 *db, Sizes *sizes) {
    sqlite3_stmt *st = 0;
    sqlite3_int64 top = 0;
    if (sqlite3_prepare_v2(db, "SELECT max(id) FROM fts_docsize", -1, &st, 0) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        top = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    st = 0;
    if (top <= 0 || top > 100000000) return;
    unsigned int *a = sqlite3_malloc64((sqlite3_uint64)(top + 1) * sizeof *a);
    if (a == 0) return;
    memset(a, 0xff, (size_t)(top + 1) * sizeof *a); /* UINT_MAX: no such row */
    int ok = sqlite3_prepare_v2(db, "SELECT id, sz FROM fts_docsize", -1, &st, 0) == SQLITE_OK;
    int rc = SQLITE_ROW;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 id = sqlite3_column_int64(st, 0);
        const unsigned char *blob = sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        if (id < 0 || id > top || docsize_total(blob, n, &a[id]) != 0) ok = 0;
    }
    sqlite3_finalize(st);
    if (!ok || rc != SQLITE_DONE) {
        sqlite3_free(a);
        return;
    }
    sizes->sizes = a;
    sizes->n = top + 1;
}

static int Ranker_init(Ranker *self, PyObject *args, PyObject *kwds) {
    const char *uri;
    (void)kwds;
    if (!PyArg_ParseTuple(args, "s", &uri)) return -1;
    if (self->db != 0) {
        PyErr_SetString(PyExc_RuntimeError, "Ranker already open");
        return -1;
    }
    int rc = sqlite3_open_v2(uri, &self->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX, 0);
    if (rc != SQLITE_OK) {
        PyErr_Format(PyExc_OSError, "cannot open %s: %s", uri, self->db ? sqlite3_errmsg(self->db) : "out of memory");
        sqlite3_close_v2(self->db);
        self->db = 0;
        return -1;
    }
    sqlite3_exec(self->db, "PRAGMA mmap_size = 2147483648", 0, 0, 0); /* as _connect_ro */
    Py_BEGIN_ALLOW_THREADS;
    load_sizes(self->db, &self->sizes);
    Py_END_ALLOW_THREADS;
    fts5_api *api = 0;
    sqlite3_stmt *st = 0;
    if (sqlite3_prepare_v2(self->db, "SELECT fts5(?1)", -1, &st, 0) == SQLITE_OK) {
        sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", 0);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (api == 0 || api->iVersion < 2 || api->xCreateFunction(api, "bm25idf", &self->sizes, bm25idf, 0) != SQLITE_OK) {
        PyErr_SetString(PyExc_OSError, "this SQLite has no FTS5 to rank with");
        sqlite3_close_v2(self->db);
        self->db = 0;
        return -1;
    }
    return 0;
}

static void Ranker_release(Ranker *self) {
    if (self->db != 0) {
        sqlite3_close_v2(self->db);
        self->db = 0;
    }
    sqlite3_free(self->sizes.sizes);
    self->sizes.sizes = 0;
    self->sizes.n = 0;
}

static PyObject *Ranker_close(Ranker *self, PyObject *unused) {
    (void)unused;
    if (self->busy > 0) {
        /* Another thread's rows() reads the connection and the sizes without the GIL. */
        PyErr_SetString(PyExc_RuntimeError, "the Ranker is searching in another thread: close it after");
        return NULL;
    }
    Ranker_release(self);
    Py_RETURN_NONE;
}

static void Ranker_dealloc(Ranker *self) {
    Ranker_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int bind(sqlite3_stmt *st, PyObject *params) {
    Py_ssize_t n = PyTuple_GET_SIZE(params);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(params, i);
        int rc;
        if (PyLong_Check(v)) {
            long long x = PyLong_AsLongLong(v);
            if (x == -1 && PyErr_Occurred()) return -1;
            rc = sqlite3_bind_int64(st, (int)i + 1, x);
        } else if (PyUnicode_Check(v)) {
            Py_ssize_t len;
            const char *s = PyUnicode_AsUTF8AndSize(v, &len);
            if (s == 0) return -1;
            rc = sqlite3_bind_text64(st, (int)i + 1, s, (sqlite3_uint64)len, SQLITE_TRANSIENT, SQLITE_UTF8);
        } else if (PyBytes_Check(v)) {
            rc = sqlite3_bind_blob64(st, (int)i + 1, PyBytes_AS_STRING(v), (sqlite3_uint64)PyBytes_GET_SIZE(v),
                                     SQLITE_TRANSIENT);
        } else {
            PyErr_SetString(PyExc_TypeError, "parameters are int, str or bytes");
            return -1;
        }
        if (rc != SQLITE_OK) {
            PyErr_Format(PyExc_ValueError, "cannot bind parameter %zd: %s", i + 1, sqlite3_errstr(rc));
            return -1;
        }
    }
    return 0;
}

/* rows(sql, params) -> [(int, float), ...]: the rows of a statement whose first two columns are
 * an integer and a real (a rowid and a score). */
static PyObject *Ranker_rows(Ranker *self, PyObject *args) {
    const char *sql;
    PyObject *params;
    if (!PyArg_ParseTuple(args, "sO!", &sql, &PyTuple_Type, &params)) return NULL;
    if (self->db == 0) {
        PyErr_SetString(PyExc_ValueError, "the Ranker is closed");
        return NULL;
    }
    sqlite3_stmt *st = 0;
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, 0) != SQLITE_OK) {
        PyErr_SetString(PyExc_ValueError, sqlite3_errmsg(self->db));
        return NULL;
    }
    if (bind(st, params) < 0) {
        sqlite3_finalize(st);
        return NULL;
    }
    size_t cap = 16, len = 0;
    sqlite3_int64 *ids = PyMem_RawMalloc(cap * sizeof *ids);
    double *scores = PyMem_RawMalloc(cap * sizeof *scores);
    int rc = SQLITE_NOMEM;
    if (ids != 0 && scores != 0) {
        self->busy++; /* under the GIL: close() refuses until this search has ended */
        Py_BEGIN_ALLOW_THREADS;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (len == cap) {
                cap *= 2;
                sqlite3_int64 *i2 = PyMem_RawRealloc(ids, cap * sizeof *ids);
                if (i2 != 0) ids = i2;
                double *s2 = PyMem_RawRealloc(scores, cap * sizeof *scores);
                if (s2 != 0) scores = s2;
                if (i2 == 0 || s2 == 0) {
                    rc = SQLITE_NOMEM;
                    break;
                }
            }
            ids[len] = sqlite3_column_int64(st, 0);
            scores[len] = sqlite3_column_double(st, 1);
            len++;
        }
        Py_END_ALLOW_THREADS;
        self->busy--;
    }
    PyObject *out = NULL;
    if (rc != SQLITE_DONE) {
        PyErr_Format(PyExc_ValueError, "ranking failed: %s", rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(self->db));
    } else if ((out = PyList_New((Py_ssize_t)len)) != NULL) {
        for (size_t i = 0; i < len; i++) {
            PyObject *row = Py_BuildValue("(Ld)", ids[i], scores[i]);
            if (row == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, row);
        }
    }
    sqlite3_finalize(st);
    PyMem_RawFree(ids);
    PyMem_RawFree(scores);
    return out;
}

static PyMethodDef Ranker_methods[] = {
    {"rows", (PyCFunction)Ranker_rows, METH_VARARGS, "rows(sql, params): [(rowid, score), ...], GIL released"},
    {"close", (PyCFunction)Ranker_close, METH_NOARGS, "close the connection"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RankerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tradingd.connectors.polymarket._rank.Ranker",
    .tp_basicsize = sizeof(Ranker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ranker(uri): a read-only connection to a catalog index with bm25idf() registered",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Ranker_init,
    .tp_dealloc = (destructor)Ranker_dealloc,
    .tp_methods = Ranker_methods,
};

static struct PyModuleDef rank_module = {
    PyModuleDef_HEAD_INIT, "_rank", "bm25 with known idfs (see the source)", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rank(void) {
    if (PyType_Ready(&RankerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&rank_module);
    if (m == NULL) return NULL;
    Py_INCREF(&RankerType);
    if (PyModule_AddObject(m, "Ranker", (PyObject *)&RankerType) < 0) {
        Py_DECREF(&RankerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
