/* events._pages: an eventlog's pages read straight into events (issue 15).

   A `Reader` is a read-only, single-thread (SQLITE_OPEN_NOMUTEX) connection to one
   SQLite file, opened through the same libsqlite3 the sqlite3 module uses.
   `Reader.events(sql, params, first, type, shared)` runs SQL with PARAMS (integers only) and
   returns a list with an instance of TYPE (a tuple subclass: `events.envelope.Event`) for
   each row: (FIRST + its index, *its columns), each column converted as Python's sqlite3
   module converts it with no converters (INTEGER -> int, REAL -> float, TEXT -> str
   decoded as strict UTF-8, BLOB -> bytes, NULL -> None); equal short texts of the
   columns whose bits SHARED sets (bit 0 the first column: names, client and session
   ids) come as one str object, kept while the reader is open.

   It returns None, having read nothing for the caller, whenever the page is anything
   but plain: SQLite reports any error (busy, locked, corrupt, ...), a TEXT value is not
   UTF-8, a parameter is not an integer. The caller then reads the page with the sqlite3
   module, which raises or explains as it always has (events/sqlite_source.py), so this
   module decides nothing of what a page holds: it only builds the same events faster
   than the sqlite3 module's rows (no GIL release, no connection mutex, no row tuple per
   event). tests/test_pages.py compares both readers' events on every fixture.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

/* Texts of at most SHARED_MAX bytes are kept in a table of SHARED_SLOTS, by their bytes,
   for the reader's life: names and ids repeat from page to page. */
#define SHARED_MAX 64
#define SHARED_SLOTS 1024

typedef struct {
    int len;
    PyObject *value;
    char text[SHARED_MAX];
} SharedText;

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    SharedText *shared;
} Reader;

static void shared_clear(Reader *self) {
    if (self->shared == NULL) {
        return;
    }
    for (int i = 0; i < SHARED_SLOTS; i++) {
        Py_CLEAR(self->shared[i].value);
    }
    PyMem_Free(self->shared);
    self->shared = NULL;
}

/* A new reference to TEXT (LEN bytes) as str, shared when short; NULL with a Python
   error set when it is not UTF-8 (or memory runs out). The table is two-way set
   associative, the most recently used of a set first. */
static PyObject *text_value(Reader *self, const char *text, int len) {
    if (len > SHARED_MAX || self->shared == NULL) {
        return PyUnicode_DecodeUTF8(text, len, NULL);
    }
    uint32_t hash = 2166136261u; /* FNV-1a, then a finalizer that mixes the low bits */
    for (int i = 0; i < len; i++) {
        hash = (hash ^ (unsigned char)text[i]) * 16777619u;
    }
    hash ^= hash >> 16;
    hash *= 0x7feb352du;
    hash ^= hash >> 15;
    hash *= 0x846ca68bu;
    hash ^= hash >> 16;
    SharedText *set = &self->shared[(hash & (SHARED_SLOTS / 2 - 1)) * 2];
    for (int way = 0; way < 2; way++) {
        SharedText *slot = &set[way];
        if (slot->value != NULL && slot->len == len &&
            memcmp(slot->text, text, (size_t)len) == 0) {
            if (way == 1) {
                SharedText first = set[0];
                set[0] = set[1];
                set[1] = first;
            }
            return Py_NewRef(set[0].value);
        }
    }
    PyObject *value = PyUnicode_DecodeUTF8(text, len, NULL);
    if (value == NULL) {
        return NULL;
    }
    Py_XDECREF(set[1].value);
    set[1] = set[0];
    set[0].value = Py_NewRef(value);
    set[0].len = len;
    memcpy(set[0].text, text, (size_t)len);
    return value;
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    const char *uri;
    if (!PyArg_ParseTuple(args, "s:Reader", &uri)) {
        return -1;
    }
    if (self->db != NULL) {
        sqlite3_close_v2(self->db);
        self->db = NULL;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        PyErr_Format(PyExc_OSError, "cannot open %s: %s", uri,
                     db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close_v2(db);
        return -1;
    }
    self->db = db;
    shared_clear(self);
    self->shared = PyMem_Calloc(SHARED_SLOTS, sizeof(SharedText));
    if (self->shared == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void Reader_dealloc(Reader *self) {
    if (self->db != NULL) {
        sqlite3_close_v2(self->db);
        self->db = NULL;
    }
    shared_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Reader_close(Reader *self, PyObject *unused) {
    if (self->db != NULL) {
        sqlite3_close_v2(self->db);
        self->db = NULL;
    }
    shared_clear(self);
    Py_RETURN_NONE;
}

/* Declines the page: None, nothing raised (see the module's comment). */
static PyObject *declined(sqlite3_stmt *stmt, PyObject *list) {
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError) &&
            !PyErr_ExceptionMatches(PyExc_OverflowError)) {
            /* MemoryError and the like are the caller's. */
            sqlite3_finalize(stmt);
            Py_XDECREF(list);
            return NULL;
        }
        PyErr_Clear();
    }
    sqlite3_finalize(stmt);
    Py_XDECREF(list);
    Py_RETURN_NONE;
}

static PyObject *Reader_events(Reader *self, PyObject *args) {
    const char *sql;
    PyObject *params;
    long long first;
    PyTypeObject *type;
    unsigned long long shared = 0;
    if (!PyArg_ParseTuple(args, "sO!LO!|K:events", &sql, &PyTuple_Type, &params, &first,
                          &PyType_Type, &type, &shared)) {
        return NULL;
    }
    if (!PyType_IsSubtype(type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "events: type must be a tuple subclass");
        return NULL;
    }
    if (self->db == NULL) {
        Py_RETURN_NONE;
    }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK || stmt == NULL) {
        return declined(stmt, NULL);
    }
    int columns = sqlite3_column_count(stmt);
    Py_ssize_t count = PyTuple_GET_SIZE(params);
    if (count != sqlite3_bind_parameter_count(stmt)) {
        return declined(stmt, NULL);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *param = PyTuple_GET_ITEM(params, i);
        if (!PyLong_CheckExact(param)) {
            return declined(stmt, NULL);
        }
        long long value = PyLong_AsLongLong(param);
        if (value == -1 && PyErr_Occurred()) {
            return declined(stmt, NULL);
        }
        if (sqlite3_bind_int64(stmt, (int)i + 1, value) != SQLITE_OK) {
            return declined(stmt, NULL);
        }
    }
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return declined(stmt, NULL);
    }
    long long position = first;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        PyObject *event = type->tp_alloc(type, columns + 1);
        if (event == NULL) {
            return declined(stmt, list);
        }
        PyObject *number = PyLong_FromLongLong(position++);
        if (number == NULL) {
            Py_DECREF(event);
            return declined(stmt, list);
        }
        PyTuple_SET_ITEM(event, 0, number);
        for (int c = 0; c < columns; c++) {
            PyObject *value = NULL;
            switch (sqlite3_column_type(stmt, c)) {
                case SQLITE_INTEGER:
                    value = PyLong_FromLongLong(sqlite3_column_int64(stmt, c));
                    break;
                case SQLITE_FLOAT:
                    value = PyFloat_FromDouble(sqlite3_column_double(stmt, c));
                    break;
                case SQLITE_TEXT: {
                    const char *text = (const char *)sqlite3_column_text(stmt, c);
                    int len = sqlite3_column_bytes(stmt, c);
                    if (text == NULL) {
                        break;
                    }
                    if (c < 64 && (shared >> c) & 1) {
                        value = text_value(self, text, len);
                    } else {
                        value = PyUnicode_DecodeUTF8(text, len, NULL);
                    }
                    break;
                }
                case SQLITE_BLOB: {
                    const void *blob = sqlite3_column_blob(stmt, c);
                    int len = sqlite3_column_bytes(stmt, c);
                    if (blob != NULL || len == 0) {
                        value = PyBytes_FromStringAndSize(blob ? (const char *)blob : "", len);
                    }
                    break;
                }
                default:
                    value = Py_None;
                    Py_INCREF(value);
            }
            if (value == NULL) {
                Py_DECREF(event);
                return declined(stmt, list);
            }
            PyTuple_SET_ITEM(event, c + 1, value);
        }
        int failed = PyList_Append(list, event);
        Py_DECREF(event);
        if (failed) {
            return declined(stmt, list);
        }
    }
    if (rc != SQLITE_DONE) {
        return declined(stmt, list);
    }
    sqlite3_finalize(stmt);
    return list;
}

/* name_counts(sql) -> {name: (events, flagged)} over SQL's rows (name, flag), flag an
   integer (0 or not), in the order names first come; None when declined (as events). */
static PyObject *Reader_name_counts(Reader *self, PyObject *args) {
    const char *sql;
    if (!PyArg_ParseTuple(args, "s:name_counts", &sql)) {
        return NULL;
    }
    if (self->db == NULL) {
        Py_RETURN_NONE;
    }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(self->db, sql, -1, &stmt, NULL) != SQLITE_OK || stmt == NULL ||
        sqlite3_column_count(stmt) != 2 || sqlite3_bind_parameter_count(stmt) != 0) {
        return declined(stmt, NULL);
    }
    /* INDEX maps each name to its place in COUNTS, which holds two counters a name
       (events, flagged); the row before's name is looked up without the dict. */
    PyObject *index = PyDict_New();
    if (index == NULL) {
        return declined(stmt, NULL);
    }
    Py_ssize_t capacity = 64, used = 0;
    long long *counts = PyMem_Calloc((size_t)capacity * 2, sizeof(long long));
    if (counts == NULL) {
        Py_DECREF(index);
        sqlite3_finalize(stmt);
        return PyErr_NoMemory();
    }
    PyObject *last_name = NULL; /* the name of the row before (a reference held) */
    Py_ssize_t last = -1;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (sqlite3_column_type(stmt, 0) != SQLITE_TEXT ||
            sqlite3_column_type(stmt, 1) != SQLITE_INTEGER) {
            break;
        }
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        int len = sqlite3_column_bytes(stmt, 0);
        if (text == NULL) {
            break;
        }
        PyObject *name = text_value(self, text, len);
        if (name == NULL) {
            break;
        }
        Py_ssize_t at;
        if (name == last_name) {
            at = last;
        } else {
            PyObject *found = PyDict_GetItemWithError(index, name);
            if (found != NULL) {
                at = PyLong_AsSsize_t(found);
            } else if (PyErr_Occurred()) {
                Py_DECREF(name);
                break;
            } else {
                if (used == capacity) {
                    long long *grown =
                        PyMem_Realloc(counts, (size_t)capacity * 4 * sizeof(long long));
                    if (grown == NULL) {
                        Py_DECREF(name);
                        PyErr_NoMemory();
                        break;
                    }
                    memset(grown + capacity * 2, 0, (size_t)capacity * 2 * sizeof(long long));
                    counts = grown;
                    capacity *= 2;
                }
                at = used++;
                PyObject *number = PyLong_FromSsize_t(at);
                if (number == NULL || PyDict_SetItem(index, name, number) < 0) {
                    Py_XDECREF(number);
                    Py_DECREF(name);
                    break;
                }
                Py_DECREF(number);
            }
            Py_INCREF(name);
            Py_XSETREF(last_name, name);
            last = at;
        }
        Py_DECREF(name);
        counts[at * 2] += 1;
        counts[at * 2 + 1] += sqlite3_column_int64(stmt, 1) != 0;
    }
    PyObject *result = NULL;
    if (rc == SQLITE_DONE && !PyErr_Occurred()) {
        result = PyDict_New();
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (result != NULL && PyDict_Next(index, &pos, &key, &value)) {
            Py_ssize_t at = PyLong_AsSsize_t(value);
            PyObject *pair = Py_BuildValue("(LL)", counts[at * 2], counts[at * 2 + 1]);
            if (pair == NULL || PyDict_SetItem(result, key, pair) < 0) {
                Py_XDECREF(pair);
                Py_CLEAR(result);
                break;
            }
            Py_DECREF(pair);
        }
    }
    PyMem_Free(counts);
    Py_DECREF(index);
    Py_XDECREF(last_name);
    if (result == NULL) {
        return declined(stmt, NULL);
    }
    sqlite3_finalize(stmt);
    return result;
}

static PyMethodDef Reader_methods[] = {
    {"name_counts", (PyCFunction)Reader_name_counts, METH_VARARGS,
     "name_counts(sql) -> {name: (events, flagged)} of SQL's (name, flag) rows, or None when"
     " declined"},
    {"events", (PyCFunction)Reader_events, METH_VARARGS,
     "events(sql, params, first, type, shared=0) -> list of TYPE instances, or None when"
     " declined"},
    {"close", (PyCFunction)Reader_close, METH_NOARGS, "close the connection"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "events._pages.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reader(uri): a read-only connection that reads eventlog pages into events",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
};

/* An event's identity and args as the prefix digest hashes them
   (projector/checkpoint.py, PrefixDigest.update_many):
   f"{seqNumGlobal}.{seqNumClient}\x1f{name}\x1f" + the args' UTF-8 + b"\x1e". */
typedef struct {
    long long g, c;
    const char *name, *args;
    Py_ssize_t name_len, args_len;
} DigestPart;

/* Fills PART from EVENT; 0 when EVENT is not plain (positions that are no int64, a name
   that is no str, args neither bytes nor str, text with a lone surrogate), with no
   Python error left set; -1 on another error. */
static int digest_part(PyObject *event, DigestPart *part) {
    if (!PyTuple_Check(event) || PyTuple_GET_SIZE(event) < 8) {
        return 0;
    }
    PyObject *g = PyTuple_GET_ITEM(event, 1), *c = PyTuple_GET_ITEM(event, 2);
    PyObject *name = PyTuple_GET_ITEM(event, 6), *args = PyTuple_GET_ITEM(event, 7);
    if (!PyLong_CheckExact(g) || !PyLong_CheckExact(c) || !PyUnicode_CheckExact(name)) {
        return 0;
    }
    int overflow = 0;
    part->g = PyLong_AsLongLongAndOverflow(g, &overflow);
    if (overflow) {
        return 0;
    }
    part->c = PyLong_AsLongLongAndOverflow(c, &overflow);
    if (overflow) {
        return 0;
    }
    part->name = PyUnicode_AsUTF8AndSize(name, &part->name_len);
    if (part->name == NULL) {
        goto not_plain;
    }
    if (PyBytes_CheckExact(args)) {
        part->args = PyBytes_AS_STRING(args);
        part->args_len = PyBytes_GET_SIZE(args);
    } else if (PyUnicode_CheckExact(args)) {
        part->args = PyUnicode_AsUTF8AndSize(args, &part->args_len);
        if (part->args == NULL) {
            goto not_plain;
        }
    } else {
        return 0;
    }
    return 1;
not_plain:
    if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

static PyObject *digest_text(PyObject *self, PyObject *args) {
    PyObject *events;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "O!nn:digest_text", &PyList_Type, &events, &start, &stop)) {
        return NULL;
    }
    Py_ssize_t size = PyList_GET_SIZE(events);
    if (start < 0) {
        start = 0;
    }
    if (stop > size) {
        stop = size;
    }
    if (stop < start) {
        stop = start;
    }
    Py_ssize_t count = stop - start;
    DigestPart *parts = PyMem_Malloc(sizeof(DigestPart) * (size_t)(count ? count : 1));
    if (parts == NULL) {
        return PyErr_NoMemory();
    }
    /* 2 x 20 digits and a sign each, '.', two \x1f and \x1e. */
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        int plain = digest_part(PyList_GET_ITEM(events, start + i), &parts[i]);
        if (plain <= 0) {
            PyMem_Free(parts);
            if (plain < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        total += 46 + parts[i].name_len + parts[i].args_len;
    }
    PyObject *text = PyBytes_FromStringAndSize(NULL, total);
    if (text == NULL) {
        PyMem_Free(parts);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(text);
    char *at = out;
    for (Py_ssize_t i = 0; i < count; i++) {
        at += sprintf(at, "%lld.%lld\x1f", parts[i].g, parts[i].c);
        memcpy(at, parts[i].name, (size_t)parts[i].name_len);
        at += parts[i].name_len;
        *at++ = '\x1f';
        memcpy(at, parts[i].args, (size_t)parts[i].args_len);
        at += parts[i].args_len;
        *at++ = '\x1e';
    }
    PyMem_Free(parts);
    if (_PyBytes_Resize(&text, at - out) < 0) {
        return NULL;
    }
    return text;
}

/* plain_json(value) -> JSON text as msgspec's encoder (and so JSON.stringify) writes a
   value holding only str, int (within 64 bits), bool, None, and exact lists and dicts
   keyed by str, at most MAX_NESTING deep (events/encoding.py, js_json); None for any
   other value (a float, a lone surrogate, a subclass, ...): js_json's own path then
   writes it. Strings escape '"', '\\' and the control characters (\b \t \n \f \r, the
   rest \u00xx); everything else is written as it is. */
#define MAX_NESTING 128

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    int ascii;
} Buffer;

static int buffer_reserve(Buffer *buffer, Py_ssize_t more) {
    if (buffer->len + more <= buffer->cap) {
        return 0;
    }
    Py_ssize_t cap = buffer->cap * 2;
    while (cap < buffer->len + more) {
        cap *= 2;
    }
    char *data = PyMem_Realloc(buffer->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buffer->data = data;
    buffer->cap = cap;
    return 0;
}

static int buffer_write(Buffer *buffer, const char *text, Py_ssize_t len) {
    if (buffer_reserve(buffer, len) < 0) {
        return -1;
    }
    memcpy(buffer->data + buffer->len, text, (size_t)len);
    buffer->len += len;
    return 0;
}

/* 1 written, 0 not plain (no error set), -1 error. */
static int json_string(Buffer *buffer, PyObject *text) {
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &len);
    if (utf8 == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        buffer->ascii = 0;
    }
    /* At most 6 bytes a byte (\u00xx) and the quotes. */
    if (buffer_reserve(buffer, len * 6 + 2) < 0) {
        return -1;
    }
    static const char hex[] = "0123456789abcdef";
    char *out = buffer->data + buffer->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)utf8[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '\b': *out++ = 'b'; break;
            case '\t': *out++ = 't'; break;
            case '\n': *out++ = 'n'; break;
            case '\f': *out++ = 'f'; break;
            case '\r': *out++ = 'r'; break;
            default:
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = hex[c >> 4];
                *out++ = hex[c & 15];
        }
    }
    *out++ = '"';
    buffer->len = out - buffer->data;
    return 1;
}

static int json_value(Buffer *buffer, PyObject *value, int depth) {
    if (PyUnicode_CheckExact(value)) {
        return json_string(buffer, value);
    }
    if (value == Py_None) {
        return buffer_write(buffer, "null", 4) < 0 ? -1 : 1;
    }
    if (value == Py_True) {
        return buffer_write(buffer, "true", 4) < 0 ? -1 : 1;
    }
    if (value == Py_False) {
        return buffer_write(buffer, "false", 5) < 0 ? -1 : 1;
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return 0;
        }
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (buffer_reserve(buffer, 24) < 0) {
            return -1;
        }
        buffer->len += sprintf(buffer->data + buffer->len, "%lld", number);
        return 1;
    }
    if (depth >= MAX_NESTING) {
        return 0;
    }
    if (PyList_CheckExact(value)) {
        if (buffer_write(buffer, "[", 1) < 0) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
            if (i > 0 && buffer_write(buffer, ",", 1) < 0) {
                return -1;
            }
            int done = json_value(buffer, PyList_GET_ITEM(value, i), depth + 1);
            if (done <= 0) {
                return done;
            }
        }
        return buffer_write(buffer, "]", 1) < 0 ? -1 : 1;
    }
    if (PyDict_CheckExact(value)) {
        if (buffer_write(buffer, "{", 1) < 0) {
            return -1;
        }
        Py_ssize_t pos = 0;
        PyObject *key, *item;
        int first = 1;
        while (PyDict_Next(value, &pos, &key, &item)) {
            if (!PyUnicode_CheckExact(key)) {
                return 0;
            }
            if (!first && buffer_write(buffer, ",", 1) < 0) {
                return -1;
            }
            first = 0;
            int done = json_string(buffer, key);
            if (done <= 0) {
                return done;
            }
            if (buffer_write(buffer, ":", 1) < 0) {
                return -1;
            }
            done = json_value(buffer, item, depth + 1);
            if (done <= 0) {
                return done;
            }
        }
        return buffer_write(buffer, "}", 1) < 0 ? -1 : 1;
    }
    return 0;
}

static PyObject *plain_json(PyObject *self, PyObject *value) {
    Buffer buffer = {PyMem_Malloc(256), 0, 256, 1};
    if (buffer.data == NULL) {
        return PyErr_NoMemory();
    }
    int done = json_value(&buffer, value, 0);
    PyObject *text = NULL;
    if (done > 0) {
        if (buffer.ascii) {
            text = PyUnicode_New(buffer.len, 127);
            if (text != NULL) {
                memcpy(PyUnicode_DATA(text), buffer.data, (size_t)buffer.len);
            }
        } else {
            text = PyUnicode_DecodeUTF8(buffer.data, buffer.len, NULL);
        }
    } else if (done == 0) {
        text = Py_NewRef(Py_None);
    }
    PyMem_Free(buffer.data);
    return text;
}

static PyObject *sqlite_version(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(sqlite3_libversion());
}

static PyMethodDef module_methods[] = {
    {"digest_text", digest_text, METH_VARARGS,
     "digest_text(events, start, stop) -> what the prefix digest hashes of events[start:stop]"
     " (bytes), or None when one of them is not plain"},
    {"plain_json", plain_json, METH_O,
     "plain_json(value) -> what js_json writes of a plain value (no float, no lone"
     " surrogate, 64-bit integers, exact lists and dicts), or None"},
    {"sqlite_version", sqlite_version, METH_NOARGS,
     "the version of the SQLite library this module runs"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef pages_module = {
    PyModuleDef_HEAD_INIT, "events._pages",
    "An eventlog's pages read straight into events (see events/_pages.c).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__pages(void) {
    if (PyType_Ready(&ReaderType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&pages_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(module, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
