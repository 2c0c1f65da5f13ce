/* projector._writer: the batch writer process's statements run from MessagePack in C
   (issue 15).

   The writer process (projector/writer.py) receives each part of a batch as MessagePack:
   a list of statements (verb, sql, params, rows), see `projector.writer.Op`. With the
   sqlite3 module, it decodes a part into Python objects (about a fifth of its time on
   large) and the module binds them again, value by value. A `Connection` here runs a
   part straight from its bytes: each value is bound from where it lies in the part, on
   a connection opened through the same libsqlite3 the sqlite3 module uses.

   For every part the main process writes (`projector.writer.BatchWriter.submit`: lists
   of rows, maps only for the tracking insert, text as msgspec writes it, valid UTF-8)
   it does what the sqlite3 module (Python 3.11, no adapters, isolation_level=None) does
   with the decoded part, and fails as it fails:
   * "many" runs the statement once per row (executemany; a statement that changes
     nothing is refused), "one" once, "track" once and reports when the statement
     returned no row (the tracking insert recorded nothing); a text holding more than
     one statement is refused;
   * a list of values binds by position, a map by name (``:name``), with the module's
     ProgrammingError when their number or names do not match the statement;
   * nil -> NULL; true/false -> 1/0 (a bool is an int); integers -> INTEGER, those above
     2^63-1 raising the module's OverflowError; floats -> REAL (SQLite stores NaN as
     NULL); text -> TEXT from its UTF-8 as sent (msgspec writes only valid UTF-8: text
     with a lone surrogate is never sent); bytes -> BLOB; a list or a map as a value ->
     the module's ProgrammingError "Error binding parameter N: type 'list' is not
     supported" (N from 1), however deeply it nests; text or a blob beyond SQLite's
     length limit -> SQLite's DataError, beyond 2^31-1 bytes -> the module's
     OverflowError; SQL holding a NUL, or more than one statement -> the module's
     ProgrammingError; SQL that is only whitespace or comments runs nothing;
   * SQLite's errors raise the sqlite3 module's own classes (the primary result code
     chooses the class, as the module's get_exception_class does), with
     ``sqlite_errorcode`` set to the extended code.
   tests/test_writer.py runs the same parts through both and compares the tables and
   the failures.

   `run(part)` returns None when every statement ran, ("tracking",) when the tracking
   insert recorded nothing, or ("error", exception, rows) for the statement that failed,
   ROWS being the statement's flag (the caller decides whether the rows are at fault:
   `projector.writer.row_error`). Text that is not a well-formed part raises ValueError:
   the main process wrote it, so it is a bug. So does a part of a shape the main process
   never writes (params that are not a list or a map, a MessagePack extension value),
   where the module might bind it otherwise (a string's characters one by one, a
   datetime through its adapter); text that is not UTF-8 is bound as it is, where
   msgspec would refuse to decode it, and a map's repeated name binds its first value,
   where msgspec keeps the last. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

/* Prepared statements kept per connection, by their SQL text (a batch uses a few tens). */
#define CACHE_SLOTS 64

typedef struct {
    char *sql;
    Py_ssize_t len;
    sqlite3_stmt *stmt;
} Cached;

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    Cached cache[CACHE_SLOTS];
    int used;
    int next; /* the slot replaced when the cache is full */
} Connection;

/* The sqlite3 module, for its exception classes. */
static PyObject *python_sqlite3 = NULL;

/* ------------------------------------------------------------------ errors */

static PyObject *error_class(int code) {
    const char *name;
    switch (code & 0xff) {
    case SQLITE_INTERNAL:
    case SQLITE_NOTFOUND:
        name = "InternalError";
        break;
    case SQLITE_NOMEM:
        return PyExc_MemoryError;
    case SQLITE_ERROR:
    case SQLITE_PERM:
    case SQLITE_ABORT:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_INTERRUPT:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_EMPTY:
    case SQLITE_SCHEMA:
        name = "OperationalError";
        break;
    case SQLITE_CORRUPT:
        name = "DatabaseError";
        break;
    case SQLITE_TOOBIG:
        name = "DataError";
        break;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
        name = "IntegrityError";
        break;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        name = "InterfaceError";
        break;
    default:
        name = "DatabaseError";
    }
    PyObject *cls = PyObject_GetAttrString(python_sqlite3, name);
    if (cls == NULL) {
        return NULL;
    }
    Py_DECREF(cls); /* the module keeps it */
    return cls;
}

/* A new exception of the sqlite3 module's class for DB's last error (a new reference). */
static PyObject *sqlite_error(sqlite3 *db) {
    int code = sqlite3_errcode(db);
    PyObject *cls = error_class(code);
    if (cls == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_CallFunction(cls, "s", sqlite3_errmsg(db));
    if (exc == NULL) {
        return NULL;
    }
    PyObject *extended = PyLong_FromLong(sqlite3_extended_errcode(db));
    if (extended == NULL || PyObject_SetAttrString(exc, "sqlite_errorcode", extended) < 0) {
        Py_XDECREF(extended);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(extended);
    return exc;
}

/* A new exception of the sqlite3 module's class NAME (or CLS) with a formatted text. */
static PyObject *module_error(const char *name, const char *format, ...) {
    PyObject *cls = PyObject_GetAttrString(python_sqlite3, name);
    if (cls == NULL) {
        return NULL;
    }
    va_list args;
    va_start(args, format);
    PyObject *text = PyUnicode_FromFormatV(format, args);
    va_end(args);
    PyObject *exc = text == NULL ? NULL : PyObject_CallOneArg(cls, text);
    Py_XDECREF(text);
    Py_DECREF(cls);
    return exc;
}

static PyObject *plain_error(PyObject *cls, const char *text) {
    return PyObject_CallFunction(cls, "s", text);
}

/* ------------------------------------------------------------------ MessagePack */

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

static int malformed(void) {
    PyErr_SetString(PyExc_ValueError, "a batch part that is not the writer's MessagePack");
    return -1;
}

static int take(Cursor *c, Py_ssize_t n, const unsigned char **at) {
    if (c->end - c->p < n) {
        return malformed();
    }
    *at = c->p;
    c->p += n;
    return 0;
}

static uint64_t big_endian(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* The length of an array (KIND 'a'), a map ('m'), a str ('s') or a bin ('b') at C, or -1
   (no error set) when the value there is of another kind; the cursor moves past the
   header only when it is of KIND. */
static Py_ssize_t header(Cursor *c, char kind) {
    if (c->p >= c->end) {
        return -1;
    }
    unsigned char b = *c->p;
    int size = 0;
    uint64_t len = 0;
    switch (kind) {
    case 'a':
        if ((b & 0xf0) == 0x90) {
            len = b & 0x0f;
        } else if (b == 0xdc || b == 0xdd) {
            size = b == 0xdc ? 2 : 4;
        } else {
            return -1;
        }
        break;
    case 'm':
        if ((b & 0xf0) == 0x80) {
            len = b & 0x0f;
        } else if (b == 0xde || b == 0xdf) {
            size = b == 0xde ? 2 : 4;
        } else {
            return -1;
        }
        break;
    case 's':
        if ((b & 0xe0) == 0xa0) {
            len = b & 0x1f;
        } else if (b >= 0xd9 && b <= 0xdb) {
            size = 1 << (b - 0xd9);
        } else {
            return -1;
        }
        break;
    default: /* 'b' */
        if (b >= 0xc4 && b <= 0xc6) {
            size = 1 << (b - 0xc4);
        } else {
            return -1;
        }
    }
    if (c->end - c->p < 1 + size) {
        return -1;
    }
    if (size) {
        len = big_endian(c->p + 1, size);
    }
    c->p += 1 + size;
    return (Py_ssize_t)len;
}

/* Skip one value of any kind, nested ones too, however deep (no recursion: LEFT counts
   the values still to skip, and each takes at least a byte of what is left). */
static int skip(Cursor *c) {
    const unsigned char *at = NULL;
    Py_ssize_t left = 1;
    while (left > 0) {
        if (left > c->end - c->p) {
            return malformed();
        }
        left--;
        unsigned char b = *c->p;
        Py_ssize_t n;
        if ((n = header(c, 'a')) >= 0) {
            left += n;
            continue;
        }
        if ((n = header(c, 'm')) >= 0) {
            left += 2 * n;
            continue;
        }
        if ((n = header(c, 's')) >= 0 || (n = header(c, 'b')) >= 0) {
            if (take(c, n, &at) < 0) {
                return -1;
            }
            continue;
        }
        c->p++;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            continue;
        }
        Py_ssize_t size;
        switch (b) {
        case 0xcc: case 0xd0: size = 1; break;
        case 0xcd: case 0xd1: size = 2; break;
        case 0xca: case 0xce: case 0xd2: size = 4; break;
        case 0xcb: case 0xcf: case 0xd3: size = 8; break;
        case 0xd4: size = 2; break;
        case 0xd5: size = 3; break;
        case 0xd6: size = 5; break;
        case 0xd7: size = 9; break;
        case 0xd8: size = 17; break;
        case 0xc7: case 0xc8: case 0xc9: {
            int width = 1 << (b - 0xc7);
            if (take(c, width, &at) < 0) {
                return -1;
            }
            size = (Py_ssize_t)big_endian(at, width) + 1;
            break;
        }
        default:
            return malformed();
        }
        if (take(c, size, &at) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ binding */

/* Bind the value at C to parameter INDEX (from 1) of STMT, as the sqlite3 module binds
   what msgspec decodes it to. 0 when bound; 1 when it set *FAILURE (the exception the
   module raises for that value); -1 on a malformed part (error set). */
static int bind_value(sqlite3_stmt *stmt, int index, Cursor *c, PyObject **failure) {
    const unsigned char *at = NULL;
    Py_ssize_t n;
    int rc;
    if (c->p >= c->end) {
        return malformed();
    }
    unsigned char b = *c->p;
    if ((n = header(c, 's')) >= 0) {
        if (take(c, n, &at) < 0) {
            return -1;
        }
        if (n > INT_MAX) {
            *failure = plain_error(PyExc_OverflowError, "string longer than INT_MAX bytes");
            return *failure == NULL ? -1 : 1;
        }
        rc = sqlite3_bind_text(stmt, index, (const char *)at, (int)n, SQLITE_STATIC);
    } else if ((n = header(c, 'b')) >= 0) {
        if (take(c, n, &at) < 0) {
            return -1;
        }
        if (n > INT_MAX) {
            *failure = plain_error(PyExc_OverflowError, "BLOB longer than INT_MAX bytes");
            return *failure == NULL ? -1 : 1;
        }
        rc = sqlite3_bind_blob(stmt, index, at, (int)n, SQLITE_STATIC);
    } else if (b <= 0x7f) {
        c->p++;
        rc = sqlite3_bind_int64(stmt, index, b);
    } else if (b >= 0xe0) {
        c->p++;
        rc = sqlite3_bind_int64(stmt, index, (int8_t)b);
    } else if (b == 0xc0) {
        c->p++;
        rc = sqlite3_bind_null(stmt, index);
    } else if (b == 0xc2 || b == 0xc3) {
        c->p++;
        rc = sqlite3_bind_int64(stmt, index, b == 0xc3);
    } else if (b >= 0xcc && b <= 0xcf) { /* uint 8..64 */
        int size = 1 << (b - 0xcc);
        c->p++;
        if (take(c, size, &at) < 0) {
            return -1;
        }
        uint64_t v = big_endian(at, size);
        if (v > (uint64_t)INT64_MAX) {
            *failure = plain_error(PyExc_OverflowError,
                                   "Python int too large to convert to SQLite INTEGER");
            return *failure == NULL ? -1 : 1;
        }
        rc = sqlite3_bind_int64(stmt, index, (sqlite3_int64)v);
    } else if (b >= 0xd0 && b <= 0xd3) { /* int 8..64 */
        int size = 1 << (b - 0xd0);
        c->p++;
        if (take(c, size, &at) < 0) {
            return -1;
        }
        uint64_t v = big_endian(at, size);
        int64_t s;
        if (size == 8) {
            memcpy(&s, &v, 8);
        } else {
            int shift = 64 - 8 * size; /* sign-extend */
            s = (int64_t)(v << shift) >> shift;
        }
        rc = sqlite3_bind_int64(stmt, index, s);
    } else if (b == 0xca || b == 0xcb) {
        c->p++;
        double d;
        if (b == 0xca) {
            if (take(c, 4, &at) < 0) {
                return -1;
            }
            uint32_t bits = (uint32_t)big_endian(at, 4);
            float f;
            memcpy(&f, &bits, 4);
            d = f;
        } else {
            if (take(c, 8, &at) < 0) {
                return -1;
            }
            uint64_t bits = big_endian(at, 8);
            memcpy(&d, &bits, 8);
        }
        rc = sqlite3_bind_double(stmt, index, d);
    } else {
        const char *type;
        if (header(c, 'a') >= 0) {
            type = "list";
        } else if (header(c, 'm') >= 0) {
            type = "dict";
        } else if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) {
            /* An extension type: msgspec's own objects (a datetime, an Ext), which no row
               holds (projector.handlers._BINDABLE); told apart from a bug nonetheless. */
            PyErr_SetString(PyExc_ValueError,
                            "a batch part holding a MessagePack extension value");
            return -1;
        } else {
            return malformed();
        }
        *failure = module_error("ProgrammingError",
                                "Error binding parameter %d: type '%s' is not supported",
                                index, type);
        return *failure == NULL ? -1 : 1;
    }
    if (rc != SQLITE_OK) { /* SQLite's own limit (SQLITE_TOOBIG): its error, as the module */
        *failure = sqlite_error(sqlite3_db_handle(stmt));
        return *failure == NULL ? -1 : 1;
    }
    return 0;
}

/* Bind the parameters at C (a list: by position; a map: by name) to STMT. */
static int bind_params(sqlite3_stmt *stmt, Cursor *c, PyObject **failure) {
    int needed = sqlite3_bind_parameter_count(stmt);
    Py_ssize_t n;
    if ((n = header(c, 'a')) >= 0) {
        if (n != needed) {
            *failure = module_error("ProgrammingError",
                                    "Incorrect number of bindings supplied. The current "
                                    "statement uses %d, and there are %zd supplied.",
                                    needed, n);
            return *failure == NULL ? -1 : 1;
        }
        for (int i = 0; i < needed; i++) {
            int rc = bind_value(stmt, i + 1, c, failure);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    if ((n = header(c, 'm')) < 0) {
        return malformed();
    }
    /* A map: each parameter's value is the one under its name without the prefix. */
    const unsigned char *start = c->p;
    for (int i = 1; i <= needed; i++) {
        const char *name = sqlite3_bind_parameter_name(stmt, i);
        if (name == NULL) {
            *failure = module_error("ProgrammingError",
                                    "Binding %d has no name, but you supplied a "
                                    "dictionary (which has only names).",
                                    i);
            return *failure == NULL ? -1 : 1;
        }
        name++;
        size_t name_len = strlen(name);
        Cursor m = {start, c->end};
        int found = 0;
        for (Py_ssize_t k = 0; k < n && !found; k++) {
            const unsigned char *key;
            Py_ssize_t key_len = header(&m, 's');
            if (key_len < 0 || take(&m, key_len, &key) < 0) {
                return malformed();
            }
            if ((size_t)key_len == name_len && memcmp(key, name, name_len) == 0) {
                int rc = bind_value(stmt, i, &m, failure);
                if (rc != 0) {
                    return rc;
                }
                found = 1;
            } else if (skip(&m) < 0) {
                return -1;
            }
        }
        if (!found) {
            *failure = module_error("ProgrammingError",
                                    "You did not supply a value for binding parameter :%s.",
                                    name);
            return *failure == NULL ? -1 : 1;
        }
    }
    c->p = start;
    for (Py_ssize_t k = 0; k < 2 * n; k++) {
        if (skip(c) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ statements */

/* Whether the text from P to END holds more than whitespace and comments (the sqlite3
   module's lstrip_sql, run on what follows a prepared statement). */
static int more_sql(const char *p, const char *end) {
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\f' || *p == '\n' || *p == '\r') {
            p++;
        } else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            while (p < end && *p != '\n') {
                p++;
            }
        } else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
            p += 2;
            while (p < end && !(end - p >= 2 && p[0] == '*' && p[1] == '/')) {
                p++;
            }
            p = p < end ? p + 2 : end;
        } else {
            return 1;
        }
    }
    return 0;
}

/* The prepared statement of SQL (cached), or NULL with *FAILURE set (SQLite refused it)
   or an error set. */
static sqlite3_stmt *prepare(Connection *self, const char *sql, Py_ssize_t len,
                             PyObject **failure, int *empty) {
    for (int i = 0; i < self->used; i++) {
        Cached *slot = &self->cache[i];
        if (slot->len == len && memcmp(slot->sql, sql, (size_t)len) == 0) {
            return slot->stmt;
        }
    }
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    if (len > INT_MAX) {
        *failure = module_error("DataError", "query string is too large");
        return NULL;
    }
    if (sqlite3_prepare_v2(self->db, sql, (int)len, &stmt, &tail) != SQLITE_OK) {
        sqlite3_finalize(stmt);
        *failure = sqlite_error(self->db);
        return NULL;
    }
    if (stmt == NULL) { /* only whitespace or a comment: nothing to run */
        *empty = 1;
        return NULL;
    }
    if (tail != NULL && more_sql(tail, sql + len)) {
        sqlite3_finalize(stmt);
        *failure = module_error("ProgrammingError",
                                "You can only execute one statement at a time.");
        return NULL;
    }
    char *copy = PyMem_Malloc((size_t)len + 1);
    if (copy == NULL) {
        sqlite3_finalize(stmt);
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, sql, (size_t)len);
    copy[len] = '\0';
    Cached *slot;
    if (self->used < CACHE_SLOTS) {
        slot = &self->cache[self->used++];
    } else {
        slot = &self->cache[self->next];
        self->next = (self->next + 1) % CACHE_SLOTS;
        sqlite3_finalize(slot->stmt);
        PyMem_Free(slot->sql);
    }
    slot->sql = copy;
    slot->len = len;
    slot->stmt = stmt;
    return stmt;
}

/* Step STMT once (its parameters bound); SQLITE_ROW or SQLITE_DONE, or -1 with *FAILURE
   set to SQLite's error. The statement is reset and its bindings cleared either way
   (they point into the part). */
static int step(Connection *self, sqlite3_stmt *stmt, PyObject **failure) {
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sqlite3_reset(stmt);
        *failure = sqlite_error(self->db);
        sqlite3_clear_bindings(stmt);
        return -1;
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc;
}

static PyObject *failed(PyObject *exc, int rows) {
    if (exc == NULL) {
        return NULL;
    }
    return Py_BuildValue("(sNO)", "error", exc, rows ? Py_True : Py_False);
}

/* Run the statements of one part; see the module's comment for what it returns. */
static PyObject *Connection_run(Connection *self, PyObject *arg) {
    if (self->db == NULL) {
        return PyErr_Format(PyExc_ValueError, "the connection is closed");
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    Cursor c = {view.buf, (const unsigned char *)view.buf + view.len};
    Py_ssize_t ops = header(&c, 'a');
    if (ops < 0) {
        malformed();
        goto done;
    }
    for (Py_ssize_t op = 0; op < ops; op++) {
        const unsigned char *verb, *sql;
        Py_ssize_t verb_len, sql_len;
        if (header(&c, 'a') != 4 || (verb_len = header(&c, 's')) < 0 ||
            take(&c, verb_len, &verb) < 0 || (sql_len = header(&c, 's')) < 0 ||
            take(&c, sql_len, &sql) < 0) {
            malformed();
            goto done;
        }
        /* ROWS, the op's last field, follows its params: found by skipping them. */
        Cursor params = c;
        if (skip(&c) < 0 || c.p >= c.end || (*c.p != 0xc2 && *c.p != 0xc3)) {
            malformed();
            goto done;
        }
        int rows = *c.p++ == 0xc3;
        int many = verb_len == 4 && memcmp(verb, "many", 4) == 0;
        int track = verb_len == 5 && memcmp(verb, "track", 5) == 0;
        if (!many && !track && !(verb_len == 3 && memcmp(verb, "one", 3) == 0)) {
            malformed();
            goto done;
        }
        PyObject *failure = NULL;
        if (memchr(sql, 0, (size_t)sql_len) != NULL) {
            result = failed(module_error("ProgrammingError", "the query contains a null character"),
                            rows);
            goto done;
        }
        int empty = 0;
        sqlite3_stmt *stmt = prepare(self, (const char *)sql, sql_len, &failure, &empty);
        if (empty) { /* the module runs nothing: a query that returns no row */
            if (many) {
                result = failed(module_error("ProgrammingError",
                                             "executemany() can only execute DML statements."),
                                rows);
                goto done;
            }
            if (track) {
                result = Py_BuildValue("(s)", "tracking");
                goto done;
            }
            continue;
        }
        if (stmt == NULL) {
            result = failure == NULL ? NULL : failed(failure, rows);
            goto done;
        }
        Py_ssize_t count = 1;
        if (many && (count = header(&params, 'a')) < 0) {
            malformed();
            goto done;
        }
        if (many && sqlite3_stmt_readonly(stmt)) {
            result = failed(module_error("ProgrammingError",
                                         "executemany() can only execute DML statements."),
                            rows);
            goto done;
        }
        for (Py_ssize_t r = 0; r < count; r++) {
            int rc = bind_params(stmt, &params, &failure);
            if (rc != 0) {
                sqlite3_clear_bindings(stmt);
                result = rc < 0 ? NULL : failed(failure, rows);
                goto done;
            }
            rc = step(self, stmt, &failure);
            if (rc < 0) {
                result = failed(failure, rows);
                goto done;
            }
            if (track && rc == SQLITE_DONE) {
                result = Py_BuildValue("(s)", "tracking");
                goto done;
            }
        }
    }
    if (c.p != c.end) {
        malformed();
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return result;
}

/* Run SQL (no parameters; every statement of it, rows dropped): BEGIN, COMMIT, a pragma.
   Raises the sqlite3 module's error. */
static PyObject *Connection_execute(Connection *self, PyObject *arg) {
    if (self->db == NULL) {
        return PyErr_Format(PyExc_ValueError, "the connection is closed");
    }
    const char *sql = PyUnicode_AsUTF8(arg);
    if (sql == NULL) {
        return NULL;
    }
    if (sqlite3_exec(self->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        PyObject *exc = sqlite_error(self->db);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    Py_RETURN_NONE;
}

static void forget(Connection *self) {
    for (int i = 0; i < self->used; i++) {
        sqlite3_finalize(self->cache[i].stmt);
        PyMem_Free(self->cache[i].sql);
    }
    self->used = 0;
    self->next = 0;
}

static PyObject *Connection_close(Connection *self, PyObject *unused) {
    forget(self);
    if (self->db != NULL) {
        sqlite3_close_v2(self->db);
        self->db = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Connection_in_transaction(Connection *self, void *unused) {
    return PyBool_FromLong(self->db != NULL && !sqlite3_get_autocommit(self->db));
}

/* Connection(path): opened read-write (created if missing) as sqlite3.connect opens it,
   with its default 5 s busy timeout; one thread only (SQLITE_OPEN_NOMUTEX). */
static int Connection_init(Connection *self, PyObject *args, PyObject *kwds) {
    PyObject *path = NULL;
    if (!PyArg_ParseTuple(args, "O&:Connection", PyUnicode_FSConverter, &path)) {
        return -1;
    }
    if (self->db != NULL) {
        Connection_close(self, NULL);
    }
    int rc = sqlite3_open_v2(PyBytes_AS_STRING(path), &self->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    Py_DECREF(path);
    if (rc != SQLITE_OK) {
        PyObject *exc = self->db != NULL ? sqlite_error(self->db)
                                         : module_error("OperationalError", "unable to open");
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        sqlite3_close_v2(self->db);
        self->db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(self->db, 5000);
    return 0;
}

static void Connection_dealloc(Connection *self) {
    Connection_close(self, NULL);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Connection_methods[] = {
    {"run", (PyCFunction)Connection_run, METH_O,
     "run(part) -> None, ('tracking',) or ('error', exception, rows): a batch part's "
     "statements, from its MessagePack."},
    {"execute", (PyCFunction)Connection_execute, METH_O,
     "execute(sql): run SQL without parameters (BEGIN, COMMIT, a pragma)."},
    {"close", (PyCFunction)Connection_close, METH_NOARGS, "Close the connection."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Connection_getset[] = {
    {"in_transaction", (getter)Connection_in_transaction, NULL,
     "Whether a transaction is open (SQLite's autocommit is off).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ConnectionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "projector._writer.Connection",
    .tp_basicsize = sizeof(Connection),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A connection running the writer's batch parts from their MessagePack.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Connection_init,
    .tp_dealloc = (destructor)Connection_dealloc,
    .tp_methods = Connection_methods,
    .tp_getset = Connection_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "projector._writer",
    "The batch writer's statements run from MessagePack in C (see projector/_writer.c).", -1,
    NULL,
};

PyMODINIT_FUNC PyInit__writer(void) {
    python_sqlite3 = PyImport_ImportModule("sqlite3");
    if (python_sqlite3 == NULL || PyType_Ready(&ConnectionType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&ConnectionType);
    if (PyModule_AddObject(m, "Connection", (PyObject *)&ConnectionType) < 0) {
        Py_DECREF(&ConnectionType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
