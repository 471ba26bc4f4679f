/*
 * wardgate.recording._chain: one recording event serialised and chained in one call.
 *
 * chain_event(payload, session_id, seq, ts, event_type, version, prev_hash)
 *     -> (payload_json: str, hash: str, envelope_size: int)
 *
 * It does what recording.events.canonical_json, envelope_bytes and the SHA-256 in
 * recording.writer.chain_event do, byte for byte:
 *   payload_json = canonical_json(payload)      sorted keys, no whitespace, UTF-8 kept
 *   envelope     = {"payload":..,"seq":..,"session":..,"ts":..,"type":..,"v":..}
 *   hash         = sha256(bytes.fromhex(prev_hash) + envelope).hexdigest()
 *
 * Every event the gateway records goes through this, on the event loop; in Python the
 * JSON encoder's per-call setup, the concatenation and the hashing cost ~30 µs per event
 * on the reference machine, here ~2 µs for a statement event (hashlib's OpenSSL SHA-256
 * does the hashing, called once on prev_hash and the envelope in one buffer; the sorted
 * key order of the few payload shapes is remembered, see put_dict).
 *
 * Scope, deliberately narrow: exact dict (str keys), list, tuple, str, int, bool and None.
 * Anything else -- a float, a subclass, a non-str key, text that is not valid Unicode (a
 * lone surrogate, which canonical_json spells with \u escapes), nesting deeper than 64 --
 * raises TypeError/ValueError/UnicodeError and the caller takes the Python path, which
 * stays the reference (a property test holds the two to the same bytes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ output buffer */
typedef struct {
    char *p;
    Py_ssize_t n, cap;
    char small[1024];
} Buf;

static void buf_init(Buf *b) {
    b->p = b->small;
    b->n = 0;
    b->cap = (Py_ssize_t)sizeof b->small;
}

static void buf_free(Buf *b) {
    if (b->p != b->small) PyMem_Free(b->p);
}

static int buf_grow(Buf *b, Py_ssize_t extra) {
    Py_ssize_t cap = b->cap;
    while (cap < b->n + extra) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *p;
    if (b->p == b->small) {
        p = PyMem_Malloc((size_t)cap);
        if (p != NULL) memcpy(p, b->small, (size_t)b->n);
    } else {
        p = PyMem_Realloc(b->p, (size_t)cap);
    }
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_reserve(Buf *b, Py_ssize_t extra) {
    return b->n + extra <= b->cap ? 0 : buf_grow(b, extra);
}

static inline int put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
    return 0;
}

#define PUT_LIT(b, s) put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

/* ------------------------------------------------------------------ JSON */
static const char HEX[] = "0123456789abcdef";

/* A JSON string as json's C encoder writes it with ensure_ascii=False: '"' and '\\' and
 * the C0 controls escaped (\n \r \t \b \f by name, the rest as \u00xx), everything else
 * -- DEL and all non-ASCII -- as UTF-8. */
static int put_str(Buf *b, PyObject *s) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n); /* UnicodeEncodeError on surrogates */
    if (u == NULL) return -1;
    if (buf_reserve(b, n + 2) < 0) return -1;
    b->p[b->n++] = '"';
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (put(b, u + start, i - start) < 0) return -1;
        start = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        Py_ssize_t len = 2;
        switch (c) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = HEX[c >> 4];
                esc[5] = HEX[c & 15];
                len = 6;
        }
        if (put(b, esc, len) < 0) return -1;
    }
    if (put(b, u + start, n - start) < 0) return -1;
    return put(b, "\"", 1);
}

static int put_int(Buf *b, PyObject *v) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (!overflow) {
        char tmp[24];
        char *end = tmp + sizeof tmp, *q = end;
        unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
        do {
            *--q = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (x < 0) *--q = '-';
        return put(b, q, end - q);
    }
    PyObject *text = PyObject_Str(v);
    if (text == NULL) return -1;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = u == NULL ? -1 : put(b, u, n);
    Py_DECREF(text);
    return rc;
}

static int put_value(Buf *b, PyObject *v, int depth);

static int put_items(Buf *b, PyObject *const *items, Py_ssize_t n, int depth) {
    if (put(b, "[", 1) < 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i && put(b, ",", 1) < 0) return -1;
        if (put_value(b, items[i], depth) < 0) return -1;
    }
    return put(b, "]", 1);
}

/* A dict's members in sorted key order. The gateway's payloads are a few shapes built
 * from the same (interned) key objects every time, so the sorted order of a small dict is
 * remembered per shape: the exact key objects in insertion order -> the order to write
 * them in. A dict with other keys, or in another insertion order, or with more than
 * KO_MAX keys, is sorted as it comes. */
#define KO_MAX 16
#define KO_SLOTS 16
typedef struct {
    Py_ssize_t n;
    PyObject *keys[KO_MAX]; /* strong references: the identities stay those keys' */
    uint8_t order[KO_MAX];  /* i-th key to write = keys[order[i]] */
} KeyOrder;
static KeyOrder key_orders[KO_SLOTS];
static unsigned next_slot = 0;

static int put_member(Buf *b, PyObject *key, PyObject *value, int first, int depth) {
    if (!first && put(b, ",", 1) < 0) return -1;
    if (put_str(b, key) < 0 || put(b, ":", 1) < 0) return -1;
    Py_INCREF(value);
    int rc = put_value(b, value, depth);
    Py_DECREF(value);
    return rc;
}

static int put_dict_sorted(Buf *b, PyObject *d, int depth) {
    PyObject *keys = PyDict_Keys(d);
    if (keys == NULL) return -1;
    int rc = -1;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(keys, i))) {
            PyErr_SetString(PyExc_TypeError, "a key that is not a str");
            goto done;
        }
    }
    if (PyList_Sort(keys) < 0) goto done; /* code-point order, as sorted() */
    if (put(b, "{", 1) < 0) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *value = PyDict_GetItemWithError(d, key); /* borrowed */
        if (value == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "dict changed while serialising");
            goto done;
        }
        if (put_member(b, key, value, i == 0, depth) < 0) goto done;
    }
    rc = put(b, "}", 1);
done:
    Py_DECREF(keys);
    return rc;
}

static int put_dict(Buf *b, PyObject *d, int depth) {
    Py_ssize_t n = PyDict_GET_SIZE(d);
    if (n > KO_MAX) return put_dict_sorted(b, d, depth);
    PyObject *keys[KO_MAX], *values[KO_MAX], *key, *value;
    Py_ssize_t pos = 0, k = 0;
    while (k < n && PyDict_Next(d, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "a key that is not a str");
            return -1;
        }
        keys[k] = key;
        values[k] = value;
        k++;
    }
    if (k != n) return put_dict_sorted(b, d, depth);
    uint8_t order[KO_MAX];
    int found = 0;
    for (int s = 0; s < KO_SLOTS && !found; s++) {
        KeyOrder *ko = &key_orders[s];
        if (ko->n == n && memcmp(ko->keys, keys, (size_t)n * sizeof(PyObject *)) == 0) {
            memcpy(order, ko->order, (size_t)n); /* a copy: nested dicts may reuse the slot */
            found = 1;
        }
    }
    if (!found) {
        /* insertion sort of the indices by code point (PyUnicode_Compare, as sorted()) */
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t j = i;
            while (j > 0) {
                int c = PyUnicode_Compare(keys[order[j - 1]], keys[i]);
                if (c == -1 && PyErr_Occurred()) return -1;
                if (c <= 0) break;
                order[j] = order[j - 1];
                j--;
            }
            order[j] = (uint8_t)i;
        }
        KeyOrder *ko = &key_orders[next_slot++ % KO_SLOTS];
        for (Py_ssize_t i = 0; i < ko->n; i++) Py_DECREF(ko->keys[i]);
        for (Py_ssize_t i = 0; i < n; i++) ko->keys[i] = Py_NewRef(keys[i]);
        memcpy(ko->order, order, (size_t)n);
        ko->n = n;
    }
    if (put(b, "{", 1) < 0) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (put_member(b, keys[order[i]], values[order[i]], i == 0, depth) < 0) return -1;
    }
    return put(b, "}", 1);
}

static int put_value(Buf *b, PyObject *v, int depth) {
    if (v == Py_None) return PUT_LIT(b, "null");
    if (v == Py_True) return PUT_LIT(b, "true");
    if (v == Py_False) return PUT_LIT(b, "false");
    if (PyUnicode_CheckExact(v)) return put_str(b, v);
    if (PyLong_CheckExact(v)) return put_int(b, v);
    if (depth >= 64) {
        PyErr_SetString(PyExc_ValueError, "nested deeper than the compiled path goes");
        return -1;
    }
    if (PyDict_CheckExact(v)) return put_dict(b, v, depth + 1);
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        /* A list's items are read through a fast sequence: one reference held for the
         * whole walk, so a value cannot disappear under us. */
        PyObject *seq = PySequence_Fast(v, "not a sequence");
        if (seq == NULL) return -1;
        int rc = put_items(b, PySequence_Fast_ITEMS(seq), PySequence_Fast_GET_SIZE(seq),
                           depth + 1);
        Py_DECREF(seq);
        return rc;
    }
    PyErr_Format(PyExc_TypeError, "%.80s is left to the Python encoder", Py_TYPE(v)->tp_name);
    return -1;
}

/* ------------------------------------------------------------------ hashing */
/* hashlib's sha256 (OpenSSL: SHA extensions where the CPU has them), looked up once. */
static PyObject *sha256_new = NULL;
static PyObject *str_hexdigest = NULL;

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ------------------------------------------------------------------ format_ts */
/* recording.events.format_ts of an exact datetime whose tzinfo is datetime.UTC
 * ("YYYY-MM-DDTHH:MM:SS.ffffffZ", as isoformat spells the UTC time plus "Z") into out
 * (27 characters); 0 for anything else, which the Python function formats. */
static int format_utc(PyObject *ts, char out[40]) {
    if (!PyDateTime_CheckExact(ts) || PyDateTime_DATE_GET_TZINFO(ts) != PyDateTime_TimeZone_UTC)
        return 0;
    int n = snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                     PyDateTime_GET_YEAR(ts), PyDateTime_GET_MONTH(ts), PyDateTime_GET_DAY(ts),
                     PyDateTime_DATE_GET_HOUR(ts), PyDateTime_DATE_GET_MINUTE(ts),
                     PyDateTime_DATE_GET_SECOND(ts), PyDateTime_DATE_GET_MICROSECOND(ts));
    return n == 27 ? n : 0; /* not 27: cannot happen for years 1..9999 */
}

/* format_ts(ts) -> str | None: format_utc as a str; None for what it declines. */
static PyObject *format_ts(PyObject *self, PyObject *ts) {
    (void)self;
    char out[40];
    int n = format_utc(ts, out);
    if (n == 0) Py_RETURN_NONE;
    return PyUnicode_FromStringAndSize(out, n);
}

/* ------------------------------------------------------------------ chain_event */
/* prev_hash's 64 hex digits -> 32 bytes, or -1 with ValueError set. */
static int read_prev_hash(PyObject *prev, unsigned char raw[32]) {
    Py_ssize_t prev_len;
    const char *prev_hex = PyUnicode_AsUTF8AndSize(prev, &prev_len);
    if (prev_hex == NULL) return -1;
    if (prev_len != 64) {
        PyErr_SetString(PyExc_ValueError, "prev_hash is not 64 hex digits");
        return -1;
    }
    for (int i = 0; i < 32; i++) {
        int hi = hexval(prev_hex[2 * i]), lo = hexval(prev_hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            PyErr_SetString(PyExc_ValueError, "prev_hash is not 64 hex digits");
            return -1;
        }
        raw[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* A timestamp as the recording spells it: a str as it is, or a UTC datetime formatted
 * (format_utc); TypeError for another datetime, which the Python path formats. */
static int put_ts(Buf *b, PyObject *ts) {
    if (PyUnicode_CheckExact(ts)) return put_str(b, ts);
    char out[40];
    int n = format_utc(ts, out);
    if (n == 0) {
        PyErr_SetString(PyExc_TypeError, "a timestamp that is not a UTC datetime");
        return -1;
    }
    if (put(b, "\"", 1) < 0 || put(b, out, n) < 0) return -1;
    return put(b, "\"", 1);
}

/* env holds prev_hash's 32 bytes, '{"payload":' and the payload (from payload_start to
 * payload_end): write the rest of the envelope, hash it all, and return
 * (payload_json, hash, envelope_size). */
static PyObject *seal_envelope(Buf *env, Py_ssize_t payload_start, Py_ssize_t payload_end,
                               PyObject *seq, PyObject *session, PyObject *ts, PyObject *type,
                               PyObject *version) {
    if (PUT_LIT(env, ",\"seq\":") < 0 || put_int(env, seq) < 0 ||
        PUT_LIT(env, ",\"session\":") < 0 || put_str(env, session) < 0 ||
        PUT_LIT(env, ",\"ts\":") < 0 || put_ts(env, ts) < 0 ||
        PUT_LIT(env, ",\"type\":") < 0 || put_str(env, type) < 0 ||
        PUT_LIT(env, ",\"v\":") < 0 || put_int(env, version) < 0 || put(env, "}", 1) < 0)
        return NULL;

    /* sha256(prev + envelope), read in place */
    PyObject *view = PyMemoryView_FromMemory(env->p, env->n, PyBUF_READ);
    if (view == NULL) return NULL;
    PyObject *h = PyObject_CallOneArg(sha256_new, view);
    Py_DECREF(view);
    PyObject *hash = h == NULL ? NULL : PyObject_CallMethodNoArgs(h, str_hexdigest);
    Py_XDECREF(h);
    if (hash == NULL) return NULL;

    PyObject *payload_json =
        PyUnicode_DecodeUTF8(env->p + payload_start, payload_end - payload_start, "strict");
    if (payload_json == NULL) {
        Py_DECREF(hash);
        return NULL;
    }
    return Py_BuildValue("(NNn)", payload_json, hash, env->n - 32);
}

/* The hash covers prev_hash's 32 bytes and then the envelope: both go in one buffer, so
 * hashlib is called once, on all of it. Writes those bytes and '{"payload":'. */
static int begin_envelope(Buf *env, PyObject *prev) {
    unsigned char prev_raw[32];
    if (read_prev_hash(prev, prev_raw) < 0) return -1;
    if (put(env, (const char *)prev_raw, 32) < 0) return -1;
    return PUT_LIT(env, "{\"payload\":");
}

static PyObject *chain_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "chain_event(payload, session_id, seq, ts, event_type, version, "
                        "prev_hash)");
        return NULL;
    }
    PyObject *payload = args[0], *session = args[1], *seq = args[2], *ts = args[3];
    PyObject *type = args[4], *version = args[5], *prev = args[6];
    if (!PyUnicode_CheckExact(session) || !PyUnicode_CheckExact(ts) ||
        !PyUnicode_CheckExact(type) || !PyLong_CheckExact(seq) ||
        !PyLong_CheckExact(version) || !PyUnicode_CheckExact(prev)) {
        PyErr_SetString(PyExc_TypeError, "chain_event: argument of an unexpected type");
        return NULL;
    }
    PyObject *result = NULL;
    Buf env;
    buf_init(&env);
    if (begin_envelope(&env, prev) < 0) goto done;
    Py_ssize_t payload_start = env.n;
    if (put_value(&env, payload, 0) < 0) goto done;
    result = seal_envelope(&env, payload_start, env.n, seq, session, ts, type, version);
done:
    buf_free(&env);
    return result;
}

/* ------------------------------------------------------------------ statement_event */
/* A str, or null for None; anything else is left to the Python path. */
static int put_opt_str(Buf *b, PyObject *v) {
    if (v == Py_None) return PUT_LIT(b, "null");
    if (PyUnicode_CheckExact(v)) return put_str(b, v);
    PyErr_SetString(PyExc_TypeError, "expected a str or None");
    return -1;
}

static int put_exact_int(Buf *b, PyObject *v) {
    if (PyLong_CheckExact(v)) return put_int(b, v);
    PyErr_SetString(PyExc_TypeError, "expected an int");
    return -1;
}

/* One result as events.result_payload(*parts, owned=True) serialises it:
 * parts = (n, columns, rows, truncated, total_rows, total_bytes). */
static int put_result(Buf *b, PyObject *parts) {
    if (!PyTuple_CheckExact(parts) || PyTuple_GET_SIZE(parts) != 6) {
        PyErr_SetString(PyExc_TypeError, "a result is (n, columns, rows, truncated, "
                                         "total_rows, total_bytes)");
        return -1;
    }
    PyObject *n = PyTuple_GET_ITEM(parts, 0), *columns = PyTuple_GET_ITEM(parts, 1);
    PyObject *rows = PyTuple_GET_ITEM(parts, 2), *truncated = PyTuple_GET_ITEM(parts, 3);
    PyObject *total_rows = PyTuple_GET_ITEM(parts, 4), *total_bytes = PyTuple_GET_ITEM(parts, 5);
    if (!PyList_CheckExact(columns) || !PyList_CheckExact(rows) || !PyBool_Check(truncated)) {
        PyErr_SetString(PyExc_TypeError, "a result's columns and rows are lists");
        return -1;
    }
    if (PUT_LIT(b, "{\"columns\":") < 0 || put_value(b, columns, 1) < 0 ||
        PUT_LIT(b, ",\"n\":") < 0 || put_exact_int(b, n) < 0 ||
        PUT_LIT(b, ",\"rows\":") < 0 || put_value(b, rows, 1) < 0 ||
        PUT_LIT(b, ",\"total_bytes\":") < 0 || put_exact_int(b, total_bytes) < 0 ||
        PUT_LIT(b, ",\"total_rows\":") < 0 || put_exact_int(b, total_rows) < 0 ||
        PUT_LIT(b, ",\"truncated\":") < 0)
        return -1;
    if (truncated == Py_True ? PUT_LIT(b, "true") < 0 : PUT_LIT(b, "false") < 0) return -1;
    return put(b, "}", 1);
}

/* The UTF-8 of a str, written as it is (a JSON fragment made by the Python encoder). */
static int put_raw(Buf *b, PyObject *s) {
    if (!PyUnicode_CheckExact(s)) {
        PyErr_SetString(PyExc_TypeError, "a JSON fragment is a str");
        return -1;
    }
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) return -1;
    return put(b, u, n);
}

enum {
    SE_SESSION, SE_SEQ, SE_TS, SE_VERSION, SE_PREV,
    SE_N, SE_TEXT, SE_PATH, SE_PARAMS, SE_STARTED, SE_DURATION, SE_ROWS,
    SE_SQLSTATE, SE_MESSAGE, SE_DECISION, SE_RESULTS, SE_NARGS
};

static PyObject *str_statement = NULL;

/* statement_event(session_id, seq, ts, version, prev_hash, n, text, path, params,
 *                 started_at, duration_us, rows, error_sqlstate, error_message,
 *                 decision, results) -> (payload_json, hash, envelope_size)
 *
 * ts and started_at: str, or UTC datetimes (formatted as format_ts does).
 * chain_event of the "statement" payload that recording.events.statement_payload makes
 * from these, plus "decision" (given as the two halves of its JSON around the value of
 * "n", see events.decision_parts; None: no decision) and "results" (a list of
 * ResultCapture.parts() tuples; empty: no results), without building the dicts. The
 * keys are written in their sorted order. */
static PyObject *statement_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != SE_NARGS) {
        PyErr_SetString(PyExc_TypeError, "statement_event takes 16 arguments");
        return NULL;
    }
    PyObject *session = args[SE_SESSION], *seq = args[SE_SEQ], *ts = args[SE_TS];
    PyObject *version = args[SE_VERSION], *prev = args[SE_PREV], *n = args[SE_N];
    PyObject *params = args[SE_PARAMS], *decision = args[SE_DECISION];
    PyObject *results = args[SE_RESULTS], *rows = args[SE_ROWS];
    if (!PyUnicode_CheckExact(session) ||
        !PyLong_CheckExact(seq) || !PyLong_CheckExact(version) || !PyUnicode_CheckExact(prev) ||
        !PyLong_CheckExact(n) || !PyUnicode_CheckExact(args[SE_TEXT]) ||
        !PyUnicode_CheckExact(args[SE_PATH]) ||
        !PyLong_CheckExact(args[SE_DURATION]) || !(rows == Py_None || PyLong_CheckExact(rows)) ||
        !(PyList_CheckExact(params) || PyTuple_CheckExact(params)) ||
        !PyList_CheckExact(results) ||
        !(decision == Py_None || (PyTuple_CheckExact(decision) && PyTuple_GET_SIZE(decision) == 2))) {
        PyErr_SetString(PyExc_TypeError, "statement_event: argument of an unexpected type");
        return NULL;
    }
    PyObject *result = NULL;
    Buf env;
    buf_init(&env);
    if (begin_envelope(&env, prev) < 0 || put(&env, "{", 1) < 0) goto done;
    Py_ssize_t payload_start = env.n - 1;
    if (decision != Py_None) {
        if (PUT_LIT(&env, "\"decision\":") < 0 || put_raw(&env, PyTuple_GET_ITEM(decision, 0)) < 0 ||
            put_int(&env, n) < 0 || put_raw(&env, PyTuple_GET_ITEM(decision, 1)) < 0 ||
            put(&env, ",", 1) < 0)
            goto done;
    }
    if (PUT_LIT(&env, "\"duration_us\":") < 0 || put_int(&env, args[SE_DURATION]) < 0 ||
        PUT_LIT(&env, ",\"error_message\":") < 0 || put_opt_str(&env, args[SE_MESSAGE]) < 0 ||
        PUT_LIT(&env, ",\"error_sqlstate\":") < 0 || put_opt_str(&env, args[SE_SQLSTATE]) < 0 ||
        PUT_LIT(&env, ",\"n\":") < 0 || put_int(&env, n) < 0 ||
        PUT_LIT(&env, ",\"params\":[") < 0)
        goto done;
    {
        PyObject *seq_params = PySequence_Fast(params, "params");
        if (seq_params == NULL) goto done;
        Py_ssize_t np = PySequence_Fast_GET_SIZE(seq_params);
        PyObject **items = PySequence_Fast_ITEMS(seq_params);
        int rc = 0;
        for (Py_ssize_t i = 0; i < np && rc == 0; i++) {
            if (i && put(&env, ",", 1) < 0) rc = -1;
            else rc = put_opt_str(&env, items[i]);
        }
        Py_DECREF(seq_params);
        if (rc < 0) goto done;
    }
    if (PUT_LIT(&env, "],\"path\":") < 0 || put_str(&env, args[SE_PATH]) < 0) goto done;
    Py_ssize_t nres = PyList_GET_SIZE(results);
    if (nres) {
        /* a reference for the walk: the list cannot change under us, but be safe */
        PyObject *held = PySequence_Fast(results, "results");
        if (held == NULL) goto done;
        int rc = PUT_LIT(&env, ",\"results\":[");
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(held) && rc == 0; i++) {
            if (i && put(&env, ",", 1) < 0) rc = -1;
            else rc = put_result(&env, PySequence_Fast_ITEMS(held)[i]);
        }
        Py_DECREF(held);
        if (rc < 0 || put(&env, "]", 1) < 0) goto done;
    }
    if (PUT_LIT(&env, ",\"rows\":") < 0 ||
        (rows == Py_None ? PUT_LIT(&env, "null") : put_int(&env, rows)) < 0 ||
        PUT_LIT(&env, ",\"started_at\":") < 0 || put_ts(&env, args[SE_STARTED]) < 0 ||
        PUT_LIT(&env, ",\"text\":") < 0 || put_str(&env, args[SE_TEXT]) < 0 ||
        put(&env, "}", 1) < 0)
        goto done;
    result = seal_envelope(&env, payload_start, env.n, seq, session, ts, str_statement, version);
done:
    buf_free(&env);
    return result;
}

/* ------------------------------------------------------------------ sqlite_event_params */
/* store._insert_events' parameters for SQLite: the events' seven columns one after the
 * other, each timestamp as SQLAlchemy stores a DATETIME there ("YYYY-MM-DD HH:MM:SS.ffffff",
 * store._sqlite_ts). One call per INSERT instead of a Python loop over the rows on the
 * writer thread, which holds the GIL the event loop needs. None when a row is not a
 * 7+-tuple or its timestamp is not an exact datetime in datetime.UTC: the Python path
 * takes the whole chunk. */
static PyObject *sqlite_event_params(PyObject *self, PyObject *rows) {
    (void)self;
    if (!PyList_CheckExact(rows)) {
        PyErr_SetString(PyExc_TypeError, "sqlite_event_params expects a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(rows);
    PyObject *out = PyTuple_New(n * 7);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 7) goto decline;
        PyObject *ts = PyTuple_GET_ITEM(row, 2);
        if (!PyDateTime_CheckExact(ts) ||
            PyDateTime_DATE_GET_TZINFO(ts) != PyDateTime_TimeZone_UTC)
            goto decline;
        char text[40];
        int len = snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d.%06d",
                           PyDateTime_GET_YEAR(ts), PyDateTime_GET_MONTH(ts),
                           PyDateTime_GET_DAY(ts), PyDateTime_DATE_GET_HOUR(ts),
                           PyDateTime_DATE_GET_MINUTE(ts), PyDateTime_DATE_GET_SECOND(ts),
                           PyDateTime_DATE_GET_MICROSECOND(ts));
        if (len != 26) goto decline;
        PyObject *ts_text = PyUnicode_FromStringAndSize(text, len);
        if (ts_text == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        for (int k = 0; k < 7; k++) {
            PyObject *v = k == 2 ? ts_text : PyTuple_GET_ITEM(row, k);
            if (k != 2) Py_INCREF(v);
            PyTuple_SET_ITEM(out, i * 7 + k, v);
        }
    }
    return out;
decline:
    Py_DECREF(out); /* unset slots are NULL, which tuple deallocation skips */
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"chain_event", (PyCFunction)(void (*)(void))chain_event, METH_FASTCALL,
     "chain_event(payload, session_id, seq, ts, event_type, version, prev_hash) -> "
     "(payload_json, hash, envelope_size)"},
    {"statement_event", (PyCFunction)(void (*)(void))statement_event, METH_FASTCALL,
     "statement_event(session_id, seq, ts, version, prev_hash, n, text, path, params, "
     "started_at, duration_us, rows, error_sqlstate, error_message, decision, results) -> "
     "(payload_json, hash, envelope_size)"},
    {"sqlite_event_params", sqlite_event_params, METH_O,
     "sqlite_event_params(rows) -> tuple | None: the SQLite INSERT parameters of event rows"},
    {"format_ts", format_ts, METH_O,
     "format_ts(ts) -> str | None: a UTC datetime as the recording spells it"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wardgate.recording._chain",
    "A recording event serialised (canonical JSON) and hash-chained in one call.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__chain(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    PyObject *hashlib = PyImport_ImportModule("hashlib");
    if (hashlib == NULL) return NULL;
    sha256_new = PyObject_GetAttrString(hashlib, "sha256");
    Py_DECREF(hashlib);
    if (sha256_new == NULL) return NULL;
    str_hexdigest = PyUnicode_InternFromString("hexdigest");
    if (str_hexdigest == NULL) return NULL;
    str_statement = PyUnicode_InternFromString("statement");
    if (str_statement == NULL) return NULL;
    return PyModule_Create(&module);
}
