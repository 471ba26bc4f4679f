/*
 * wardgate._rowscan: the result-row hot loops in C (PostgreSQL DataRow/CopyData, MySQL
 * row packets) and the masking gate they apply.
 *
 * Owns these and nothing else:
 *
 *   scan_rows(data, pos, end, max_message, gate)
 *       Walks consecutive, complete DataRow ('D') messages of a server chunk starting at
 *       `pos` and returns (new_pos, rows, payload_bytes) for the run it may forward
 *       untouched. It stops *before* the first message it cannot vouch for: not a
 *       DataRow, incomplete, a length out of range, columns that do not add up, or (with a
 *       gate) a value the gate cannot rule out. The caller then handles that message with
 *       the Python path, which masks it or reports the protocol violation. Stopping early
 *       is always safe; the walk never says "clean" for a row Python would change.
 *
 *   scan_copy(data, pos, end, max_message, gate, text_format)
 *       The same for the CopyData rows of COPY ... TO STDOUT, gated line by line.
 *
 *   scan_mysql_rows(data, pos, end, max_payload, seq, gate)
 *       The same for MySQL result-row packets (sequence ids checked, whole-row gate).
 *
 *   pg_cells(msg, formats), mysql_text_cells(payload, ncols),
 *   mysql_binary_cells(payload, types)
 *       One row decoded as the recording's result capture keeps it, with its size.
 *
 *   capture_rows(data, pos, end, max_message, gate, formats, rows, room_rows, room_bytes)
 *   capture_mysql_rows(data, pos, end, max_payload, seq, gate, ncols, rows, room_rows,
 *                      room_bytes)
 *       scan_rows / scan_mysql_rows for the rows the capture keeps: each row taken is
 *       decoded as pg_cells / mysql_text_cells does and appended to `rows`, within the
 *       capture's room.
 *
 *   Gate(...)
 *       A compiled copy of ValueMasker.may_contain (wardgate/masking/engine.py): the same
 *       digit rules, signal bytes and trigger literals, evaluated on one value. Built from
 *       ValueMasker.native_spec(); tests check it answers exactly as the Python gate on
 *       generated and hand-picked values.
 *
 * The pure-Python path stays the reference and the fallback (no compiler, or
 * WARDGATE_PURE_PYTHON=1).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Byte classes for the digit-run walk, as engine._RUN_TABLE / _RUN_SEPARATORS define it:
 * digits extend a run, letters and non-ASCII bytes end it, ASCII punctuation and spaces
 * are separators that neither extend nor end it. */
enum { C_SEP = 0, C_DIGIT = 1, C_UPPER = 2, C_LOWER = 3, C_HIGH = 4 };
static uint8_t CLS[256];
static uint8_t LOWER[256];
static uint8_t IS_DIGIT[256];
static uint8_t IS_UPPER[256];
static Py_ssize_t RUN_KEEP[256]; /* ~0 for digits and separators, 0 for what ends a run */

/* The bytes a gate looks at (signal bytes, rule bytes, '=' and ':', the first bytes of
 * trigger literals) each get one bit; one table lookup per value byte then collects them
 * all, without a branch. */
#define MAX_BITS 64

typedef struct {
    Py_ssize_t min_digits;
    uint64_t any_of; /* bits; 0: no any_of condition */
    Py_ssize_t upper;
    Py_ssize_t run;
    int bounded; /* DigitRule.bounded: digits glued to a letter at a run's ends do not count */
} Rule;

typedef struct {
    PyObject *lit; /* bytes */
    uint64_t first; /* the bit(s) of its first byte (both cases when folded); 0: always look */
} Trigger;

typedef struct {
    uint64_t sig;       /* the signal byte's bit */
    Trigger *triggers;
    Py_ssize_t ntriggers;
    Trigger *folded;    /* matched against the ASCII-lowered value */
    Py_ssize_t nfolded;
    int assignment;     /* folded triggers only when the value holds '=' or ':' */
} SigGate;

typedef struct {
    PyObject_HEAD
    uint8_t *actions; /* per column: 0 skip, 1 gate the value */
    Py_ssize_t nactions;
    int default_action;
    int unconditional;
    int digits_kept;
    uint64_t bit[256];  /* per byte value: its bit, or 0 */
    uint64_t keep_marks; /* bits of kept bytes other than digits */
    uint64_t assign;     /* bits of '=' and ':' */
    Py_ssize_t min_digits;
    Rule *rules;
    Py_ssize_t nrules;
    SigGate *sigs;
    Py_ssize_t nsigs;
    Trigger *plain;
    Py_ssize_t nplain;
    Trigger *plain_folded;
    Py_ssize_t nplain_folded;
    PyObject *refs; /* keeps the trigger bytes alive */
} GateObject;

static int contains(const uint8_t *h, Py_ssize_t n, PyObject *needle)
{
    Py_ssize_t m = PyBytes_GET_SIZE(needle);
    if (m > n)
        return 0;
    return memmem(h, (size_t)n, PyBytes_AS_STRING(needle), (size_t)m) != NULL;
}

/* bytes.lower().find(needle) != -1, without building the lowered copy. */
static int contains_folded(const uint8_t *h, Py_ssize_t n, PyObject *needle)
{
    const uint8_t *nd = (const uint8_t *)PyBytes_AS_STRING(needle);
    Py_ssize_t m = PyBytes_GET_SIZE(needle);
    if (m == 0)
        return 1;
    if (m > n)
        return 0;
    uint8_t first = nd[0];
    for (Py_ssize_t i = 0; i + m <= n; i++) {
        if (LOWER[h[i]] != first)
            continue;
        Py_ssize_t j = 1;
        while (j < m && LOWER[h[i + j]] == nd[j])
            j++;
        if (j == m)
            return 1;
    }
    return 0;
}

static int any_contains(const uint8_t *h, Py_ssize_t n, const Trigger *t, Py_ssize_t k,
                        uint64_t present, int folded)
{
    for (Py_ssize_t i = 0; i < k; i++) {
        if (t[i].first && !(t[i].first & present))
            continue; /* its first byte does not occur: it cannot match */
        if (folded ? contains_folded(h, n, t[i].lit) : contains(h, n, t[i].lit))
            return 1;
    }
    return 0;
}

/* The longest run of digits a regex bounded by (?<![0-9A-Za-z]) and (?![0-9A-Za-z]) could
 * use (engine._SHAPE_TABLE): an island is a stretch of digits and separators; its digits
 * count except a first chunk glued to the ASCII letter before it and a last chunk glued
 * to the letter after it. Only called when the plain run is long enough (it is never
 * shorter than this one). */
static Py_ssize_t bounded_run(const uint8_t *p, Py_ssize_t n)
{
    Py_ssize_t isl = -1, lead = 0, chunk = 0, best = 0;
    int lead_open = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t cls = CLS[p[i]];
        if (cls == C_DIGIT) {
            if (isl < 0) {
                isl = 0;
                chunk = 0;
                lead = 0;
                lead_open = i > 0 && (CLS[p[i - 1]] == C_UPPER || CLS[p[i - 1]] == C_LOWER);
            }
            isl++;
            chunk++;
            lead += lead_open;
        } else if (cls == C_SEP) {
            if (isl < 0) {
                isl = 0;
                lead = 0;
            }
            chunk = 0;
            lead_open = 0;
        } else if (isl >= 0) { /* a letter or a non-ASCII byte ends the island */
            Py_ssize_t eff = isl - lead - (cls == C_HIGH ? 0 : chunk);
            if (eff > best)
                best = eff;
            isl = -1;
        }
    }
    if (isl >= 0 && isl - lead > best)
        best = isl - lead;
    return best;
}

/* ValueMasker.may_contain(value) for one value (framing_upper = 0). */
static int gate_value(const GateObject *g, const uint8_t *p, Py_ssize_t n)
{
    if (g->unconditional)
        return 1;
    uint64_t present = 0;
    Py_ssize_t nd = 0, upper = 0, run = 0, maxrun = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        present |= g->bit[c];
        nd += IS_DIGIT[c];
        upper += IS_UPPER[c];
        run = (run + IS_DIGIT[c]) & RUN_KEEP[c];
        maxrun = run > maxrun ? run : maxrun;
    }
    int marks = (present & g->keep_marks) != 0;
    int kept = marks || (g->digits_kept && nd > 0);
    if (kept) {
        if (g->min_digits > 0 && nd >= g->min_digits) {
            Py_ssize_t maxb = -1;
            for (Py_ssize_t r = 0; r < g->nrules; r++) {
                const Rule *rule = &g->rules[r];
                if (nd < rule->min_digits)
                    continue;
                if (rule->any_of && !(present & rule->any_of))
                    continue;
                if (rule->run > 1) {
                    if (maxrun < rule->run)
                        continue;
                    if (rule->bounded) {
                        if (maxb < 0)
                            maxb = bounded_run(p, n);
                        if (maxb < rule->run)
                            continue;
                    }
                }
                if (rule->upper > 0 && upper < rule->upper)
                    continue;
                return 1;
            }
        }
        if (marks) {
            int assign = (present & g->assign) != 0;
            for (Py_ssize_t s = 0; s < g->nsigs; s++) {
                const SigGate *sg = &g->sigs[s];
                if (!(present & sg->sig))
                    continue;
                if (any_contains(p, n, sg->triggers, sg->ntriggers, present, 0))
                    return 1;
                if (sg->nfolded && (!sg->assignment || assign) &&
                    any_contains(p, n, sg->folded, sg->nfolded, present, 1))
                    return 1;
            }
        }
    }
    if (any_contains(p, n, g->plain, g->nplain, present, 0))
        return 1;
    if (any_contains(p, n, g->plain_folded, g->nplain_folded, present, 1))
        return 1;
    return 0;
}

/* ------------------------------------------------------------------ Gate type */

static int check_bytes_tuple(PyObject *t, const char *what)
{
    if (!PyTuple_Check(t)) {
        PyErr_Format(PyExc_TypeError, "Gate: %s must be a tuple of bytes", what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(t, i))) {
            PyErr_Format(PyExc_TypeError, "Gate: %s must be a tuple of bytes", what);
            return -1;
        }
    }
    return 0;
}

typedef struct {
    int idx[256];
    int next;
} Bits;

/* The bit of byte value c, assigned on first use; 0 once all 64 are taken. */
static uint64_t bit_for(GateObject *g, Bits *b, uint8_t c)
{
    if (b->idx[c] < 0) {
        if (b->next >= MAX_BITS)
            return 0;
        b->idx[c] = b->next++;
        g->bit[c] = (uint64_t)1 << b->idx[c];
    }
    return (uint64_t)1 << b->idx[c];
}

static int triggers_from(GateObject *g, Bits *b, PyObject *tuple, int folded, const char *what,
                         Trigger **out, Py_ssize_t *nout)
{
    if (check_bytes_tuple(tuple, what) < 0)
        return -1;
    Py_ssize_t k = PyTuple_GET_SIZE(tuple);
    *out = PyMem_Calloc(k ? (size_t)k : 1, sizeof(Trigger));
    if (*out == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *nout = k;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *lit = PyTuple_GET_ITEM(tuple, i);
        Trigger *t = &(*out)[i];
        t->lit = lit;
        t->first = 0;
        if (PyBytes_GET_SIZE(lit) == 0)
            continue; /* matches everywhere: always looked for */
        uint8_t c = (uint8_t)PyBytes_AS_STRING(lit)[0];
        uint64_t first = bit_for(g, b, c);
        if (folded && c >= 'a' && c <= 'z') {
            uint64_t upper = bit_for(g, b, (uint8_t)(c - 32));
            first = (first && upper) ? (first | upper) : 0;
        }
        t->first = first; /* 0 when out of bits: always looked for */
    }
    return 0;
}

static void Gate_dealloc(GateObject *self)
{
    for (Py_ssize_t i = 0; i < self->nsigs; i++) {
        PyMem_Free(self->sigs[i].triggers);
        PyMem_Free(self->sigs[i].folded);
    }
    PyMem_Free(self->sigs);
    PyMem_Free(self->rules);
    PyMem_Free(self->actions);
    PyMem_Free(self->plain);
    PyMem_Free(self->plain_folded);
    Py_XDECREF(self->refs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Gate_init(GateObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"actions", "default_action", "unconditional", "keep", "min_digits",
                             "rules", "signals", "plain", "plain_folded", NULL};
    Py_buffer actions, keep;
    int default_action, unconditional;
    Py_ssize_t min_digits;
    PyObject *rules, *signals, *plain, *plain_folded;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*ipy*nO!O!O!O!", kwlist, &actions,
                                     &default_action, &unconditional, &keep, &min_digits,
                                     &PyTuple_Type, &rules, &PyTuple_Type, &signals,
                                     &PyTuple_Type, &plain, &PyTuple_Type, &plain_folded))
        return -1;
    int rc = -1;
    Bits bits;
    for (int c = 0; c < 256; c++)
        bits.idx[c] = -1;
    bits.next = 0;
    if (self->refs != NULL || self->actions != NULL) { /* once, even after a failed try */
        PyErr_SetString(PyExc_RuntimeError, "Gate: already initialised");
        goto done;
    }
    if (keep.len != 256) {
        PyErr_SetString(PyExc_ValueError, "Gate: keep must be 256 flags, one per byte value");
        goto done;
    }
    self->actions = PyMem_Malloc(actions.len ? (size_t)actions.len : 1);
    if (self->actions == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(self->actions, actions.buf, (size_t)actions.len);
    self->nactions = actions.len;
    self->default_action = default_action ? 1 : 0;
    self->unconditional = unconditional;
    self->min_digits = min_digits;
    memset(self->bit, 0, sizeof self->bit);
    /* Kept bytes first: each needs a bit of its own (signals and rules test them). */
    const uint8_t *kb = keep.buf;
    self->keep_marks = 0;
    self->digits_kept = 0;
    for (int c = 0; c < 256; c++) {
        if (!kb[c])
            continue;
        if (c >= '0' && c <= '9') {
            self->digits_kept = 1;
            continue;
        }
        uint64_t bit = bit_for(self, &bits, (uint8_t)c);
        if (!bit) {
            PyErr_SetString(PyExc_ValueError, "Gate: more distinct gate bytes than bits");
            goto done;
        }
        self->keep_marks |= bit;
    }
    uint64_t eq = bit_for(self, &bits, '='), colon = bit_for(self, &bits, ':');
    if (!eq || !colon) {
        PyErr_SetString(PyExc_ValueError, "Gate: more distinct gate bytes than bits");
        goto done;
    }
    self->assign = eq | colon;
    Py_ssize_t nr = PyTuple_GET_SIZE(rules);
    self->rules = PyMem_Calloc(nr ? (size_t)nr : 1, sizeof(Rule));
    if (self->rules == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nr; i++) {
        Rule *r = &self->rules[i];
        Py_buffer any_of;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(rules, i),
                              "ny*nnp;Gate: a rule is (min_digits, any_of, upper, run, bounded)",
                              &r->min_digits, &any_of, &r->upper, &r->run, &r->bounded))
            goto done;
        r->any_of = 0;
        for (Py_ssize_t k = 0; k < any_of.len; k++) {
            uint8_t c = ((const uint8_t *)any_of.buf)[k];
            uint64_t bit = (kb[c] && !(c >= '0' && c <= '9')) ? self->bit[c] : 0;
            if (!bit) {
                /* engine keeps every any_of byte; anything else is a caller bug */
                PyBuffer_Release(&any_of);
                PyErr_SetString(PyExc_ValueError, "Gate: an any_of byte is not kept");
                goto done;
            }
            r->any_of |= bit;
        }
        PyBuffer_Release(&any_of);
        self->nrules = i + 1;
    }
    Py_ssize_t ns = PyTuple_GET_SIZE(signals);
    self->sigs = PyMem_Calloc(ns ? (size_t)ns : 1, sizeof(SigGate));
    if (self->sigs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < ns; i++) {
        SigGate *sg = &self->sigs[i];
        int sig, assignment;
        PyObject *triggers, *folded;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(signals, i),
                              "iO!O!p;Gate: a signal is (byte, triggers, folded, assignment)", &sig,
                              &PyTuple_Type, &triggers, &PyTuple_Type, &folded, &assignment))
            goto done;
        if (sig < 0 || sig > 255 || !kb[sig] || !self->bit[sig]) {
            PyErr_SetString(PyExc_ValueError, "Gate: a signal must be a kept byte value");
            goto done;
        }
        sg->sig = self->bit[sig];
        sg->assignment = assignment;
        self->nsigs = i + 1;
        if (triggers_from(self, &bits, triggers, 0, "triggers", &sg->triggers, &sg->ntriggers) < 0 ||
            triggers_from(self, &bits, folded, 1, "folded", &sg->folded, &sg->nfolded) < 0)
            goto done;
    }
    if (triggers_from(self, &bits, plain, 0, "plain", &self->plain, &self->nplain) < 0 ||
        triggers_from(self, &bits, plain_folded, 1, "plain_folded", &self->plain_folded,
                      &self->nplain_folded) < 0)
        goto done;
    self->refs = PyTuple_Pack(3, signals, plain, plain_folded);
    if (self->refs == NULL)
        goto done;
    rc = 0;
done:
    PyBuffer_Release(&actions);
    PyBuffer_Release(&keep);
    return rc;
}

static int gate_ready(GateObject *g)
{
    if (g->refs == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Gate was not initialised");
        return 0;
    }
    return 1;
}

static PyObject *Gate_may_contain(GateObject *self, PyObject *arg)
{
    Py_buffer v;
    if (!gate_ready(self) || PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0)
        return NULL;
    int r = gate_value(self, v.buf, v.len);
    PyBuffer_Release(&v);
    return PyBool_FromLong(r);
}

static PyMethodDef Gate_methods[] = {
    {"may_contain", (PyCFunction)Gate_may_contain, METH_O,
     "may_contain(value) -> bool: ValueMasker.may_contain for one value."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wardgate._rowscan.Gate",
    .tp_basicsize = sizeof(GateObject),
    .tp_dealloc = (destructor)Gate_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled ValueMasker gate plus the per-column actions of one result.",
    .tp_methods = Gate_methods,
    .tp_init = (initproc)Gate_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ scan_rows */

static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint32_t le32(const uint8_t *p) /* MySQL's binary protocol is little-endian */
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline int16_t be16s(const uint8_t *p)
{
    return (int16_t)(((uint16_t)p[0] << 8) | p[1]);
}

/* 1: every gated value is ruled out; 0: a value may hold something, or the row's columns
 * do not add up (the Python path reports that). */
static int row_clean(const GateObject *g, const uint8_t *buf, Py_ssize_t start, Py_ssize_t end)
{
    if (end - start < 7)
        return 0;
    int ncols = (int16_t)(((uint16_t)buf[start + 5] << 8) | buf[start + 6]);
    Py_ssize_t off = start + 7;
    for (int i = 0; i < ncols; i++) {
        if (end - off < 4)
            return 0;
        int32_t len = (int32_t)be32(buf + off);
        off += 4;
        if (len < 0)
            continue;
        if (end - off < len)
            return 0;
        int action = i < g->nactions ? g->actions[i] : g->default_action;
        if (action && gate_value(g, buf + off, len))
            return 0;
        off += len;
    }
    return off == end;
}

/* The end of the complete message of type `kind` at `pos`, or -1 when there is none the
 * walk may take: another type, a header or body cut short, a length out of range. */
static Py_ssize_t message_end(const uint8_t *buf, Py_ssize_t pos, Py_ssize_t end,
                              Py_ssize_t max_message, uint8_t kind)
{
    if (end - pos < 5 || buf[pos] != kind)
        return -1;
    uint32_t length = be32(buf + pos + 1);
    if (length < 4 || (Py_ssize_t)length > max_message)
        return -1;
    Py_ssize_t mend = pos + 1 + (Py_ssize_t)length;
    return mend > end ? -1 : mend;
}

/* 0 <= pos <= end <= len(data), else ValueError (and the buffer released). */
static int span_ok(Py_buffer *data, Py_ssize_t pos, Py_ssize_t end, const char *fn)
{
    if (pos < 0 || end > data->len || pos > end) {
        PyBuffer_Release(data);
        PyErr_Format(PyExc_ValueError, "%s: need 0 <= pos <= end <= len(data)", fn);
        return 0;
    }
    return 1;
}

/* `gate_obj` as a ready Gate, or NULL for None; 0 (data released) on a wrong type. */
static int optional_gate(PyObject *gate_obj, Py_buffer *data, const char *fn,
                         const GateObject **out)
{
    *out = NULL;
    if (gate_obj == Py_None)
        return 1;
    if (!PyObject_TypeCheck(gate_obj, &GateType)) {
        PyBuffer_Release(data);
        PyErr_Format(PyExc_TypeError, "%s: gate must be a Gate or None", fn);
        return 0;
    }
    if (!gate_ready((GateObject *)gate_obj)) {
        PyBuffer_Release(data);
        return 0;
    }
    *out = (const GateObject *)gate_obj;
    return 1;
}

static PyObject *scan_rows(PyObject *module, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t pos, end, max_message;
    PyObject *gate_obj;
    if (!PyArg_ParseTuple(args, "y*nnnO:scan_rows", &data, &pos, &end, &max_message, &gate_obj))
        return NULL;
    const GateObject *gate;
    if (!optional_gate(gate_obj, &data, "scan_rows", &gate))
        return NULL;
    if (!span_ok(&data, pos, end, "scan_rows"))
        return NULL;
    const uint8_t *buf = data.buf;
    Py_ssize_t rows = 0, nbytes = 0, mend;
    while ((mend = message_end(buf, pos, end, max_message, 'D')) >= 0) {
        if (gate != NULL && !row_clean(gate, buf, pos, mend))
            break;
        rows++;
        nbytes += mend - pos - 7; /* the row's payload after type, length, column count */
        pos = mend;
    }
    PyBuffer_Release(&data);
    return Py_BuildValue("(nnn)", pos, rows, nbytes);
}

/* COPY ... TO STDOUT rows: one CopyData ('d') message per row. A row may go out untouched
 * when the gate rules out the whole line, as pg_rows.mask_copy_line decides it; in text
 * format only for a line without a backslash, since an escape can spell a gate byte. */
static PyObject *scan_copy(PyObject *module, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t pos, end, max_message;
    PyObject *gate_obj;
    int text_format;
    if (!PyArg_ParseTuple(args, "y*nnnO!p:scan_copy", &data, &pos, &end, &max_message, &GateType,
                          &gate_obj, &text_format))
        return NULL;
    const GateObject *gate = (const GateObject *)gate_obj;
    if (!gate_ready((GateObject *)gate)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (!span_ok(&data, pos, end, "scan_copy"))
        return NULL;
    const uint8_t *buf = data.buf;
    Py_ssize_t rows = 0, mend;
    while ((mend = message_end(buf, pos, end, max_message, 'd')) >= 0) {
        const uint8_t *line = buf + pos + 5;
        Py_ssize_t n = mend - pos - 5;
        if (n > 0 && line[n - 1] == '\n') { /* pg_rows._split_eol: gate the body only */
            n--;
            if (n > 0 && line[n - 1] == '\r')
                n--;
        }
        if (text_format && memchr(line, '\\', (size_t)n) != NULL)
            break;
        if (gate_value(gate, line, n))
            break;
        rows++;
        pos = mend;
    }
    PyBuffer_Release(&data);
    return Py_BuildValue("(nn)", pos, rows);
}

/* MySQL result rows (text or binary protocol): one packet per row, 3-byte little-endian
 * payload length, 1-byte sequence id. The walk takes complete packets of the row stream
 * whose sequence ids follow on from `seq` and stops before anything the Python tracker
 * must see: a packet cut short, an empty one, one of 16 MiB - 1 (a row continued in the
 * next packet) or above `max_payload`, one starting 0xFE or 0xFF (end of rows, ERR, or a
 * row the tracker has to tell apart from them), a sequence id out of order, or -- with a
 * gate -- a row the whole-row gate cannot rule out (MySqlRowMasker.mask_row). */
/* The payload length of the row packet at buf[pos..end) that a MySQL row walk may take
 * (see scan_mysql_rows), or -1 where it stops. */
static Py_ssize_t mysql_row_packet(const uint8_t *buf, Py_ssize_t pos, Py_ssize_t end,
                                   Py_ssize_t max_payload, int seq, const GateObject *gate)
{
    if (end - pos < 5)
        return -1;
    Py_ssize_t len = (Py_ssize_t)buf[pos] | (Py_ssize_t)buf[pos + 1] << 8 |
                     (Py_ssize_t)buf[pos + 2] << 16;
    if (len == 0 || len >= 0xFFFFFF || len > max_payload || buf[pos + 3] != seq ||
        end - pos - 4 < len)
        return -1;
    uint8_t first = buf[pos + 4];
    if (first == 0xFE || first == 0xFF)
        return -1;
    if (gate != NULL && gate_value(gate, buf + pos + 4, len))
        return -1;
    return len;
}

static PyObject *scan_mysql_rows(PyObject *module, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t pos, end, max_payload;
    int seq;
    PyObject *gate_obj;
    if (!PyArg_ParseTuple(args, "y*nnniO:scan_mysql_rows", &data, &pos, &end, &max_payload,
                          &seq, &gate_obj))
        return NULL;
    const GateObject *gate;
    if (!optional_gate(gate_obj, &data, "scan_mysql_rows", &gate))
        return NULL;
    if (!span_ok(&data, pos, end, "scan_mysql_rows"))
        return NULL;
    const uint8_t *buf = data.buf;
    Py_ssize_t rows = 0, nbytes = 0;
    seq &= 0xFF;
    for (;;) {
        Py_ssize_t len = mysql_row_packet(buf, pos, end, max_payload, seq, gate);
        if (len < 0)
            break;
        rows++;
        nbytes += len;
        seq = (seq + 1) & 0xFF;
        pos += 4 + len;
    }
    PyBuffer_Release(&data);
    return Py_BuildValue("(nnni)", pos, rows, nbytes, seq);
}

/* ------------------------------------------------------------------ captured cells */

/* A value as the recording keeps it: text decoded as UTF-8 with U+FFFD for bad bytes
 * (bytes.decode("utf-8", "replace")); adds its UTF-8 length to *size, as
 * ResultCapture.add counts it. */
static PyObject *text_cell(const uint8_t *p, Py_ssize_t n, Py_ssize_t *size)
{
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p, n, "replace");
    if (s == NULL)
        return NULL;
    if (PyUnicode_IS_ASCII(s)) {
        *size += PyUnicode_GET_LENGTH(s);
    } else {
        Py_ssize_t u;
        if (PyUnicode_AsUTF8AndSize(s, &u) == NULL) {
            Py_DECREF(s);
            return NULL;
        }
        *size += u;
    }
    return s;
}

/* A binary-format value: "\x" + lowercase hex (pg_observer.decode_data_row). */
static PyObject *hex_cell(const uint8_t *p, Py_ssize_t n, Py_ssize_t *size)
{
    static const char hexd[] = "0123456789abcdef";
    PyObject *s = PyUnicode_New(2 + 2 * n, 127);
    if (s == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(s);
    out[0] = '\\';
    out[1] = 'x';
    for (Py_ssize_t i = 0; i < n; i++) {
        out[2 + 2 * i] = (Py_UCS1)hexd[p[i] >> 4];
        out[3 + 2 * i] = (Py_UCS1)hexd[p[i] & 15];
    }
    *size += 2 + 2 * n;
    return s;
}

/* The end of a cell decoder: releases `data`; outcome 1 returns (cells, size), 0 (a row
 * that does not parse) None, -1 the error already set. */
static PyObject *cells_done(PyObject *cells, Py_ssize_t size, Py_buffer *data, int outcome)
{
    PyBuffer_Release(data);
    if (outcome > 0)
        return Py_BuildValue("(Nn)", cells, size);
    Py_XDECREF(cells);
    if (outcome < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* One whole DataRow message decoded as pg_observer.decode_data_row does (text per format
 * 0, "\x" hex per format 1): 1 with *out a new list and its size added to *size, 0 when
 * the row does not parse, -1 with an error set. */
static int pg_row_cells(const uint8_t *buf, Py_ssize_t end, PyObject *formats,
                        Py_ssize_t *size, PyObject **out)
{
    *out = NULL;
    if (end < 7)
        return 0;
    int ncols = be16s(buf + 5);
    if (ncols < 0)
        return 0;
    PyObject *cells = PyList_New(ncols);
    if (cells == NULL)
        return -1;
    Py_ssize_t nfmt = PyList_GET_SIZE(formats), off = 7;
    for (int i = 0; i < ncols; i++) {
        if (end - off < 4)
            goto malformed;
        int32_t len = (int32_t)be32(buf + off);
        off += 4;
        PyObject *cell;
        if (len < 0) {
            cell = Py_NewRef(Py_None);
        } else {
            if (end - off < len)
                goto malformed;
            long fmt = 0;
            if (i < nfmt) {
                fmt = PyLong_AsLong(PyList_GET_ITEM(formats, i));
                if (fmt == -1 && PyErr_Occurred())
                    goto error;
            }
            cell = fmt == 1 ? hex_cell(buf + off, len, size) : text_cell(buf + off, len, size);
            if (cell == NULL)
                goto error;
            off += len;
        }
        PyList_SET_ITEM(cells, i, cell);
    }
    *out = cells;
    return 1;
malformed:
    Py_DECREF(cells);
    return 0;
error:
    Py_DECREF(cells);
    return -1;
}

/* The capture walks' step after decoding a row (`outcome` from a *_cells decoder): 1
 * when the row is kept (appended to `rows_out`, *size grown), 0 when the walk stops
 * before it (it did not parse, or it does not fit in `room_bytes`), -1 with an error. */
static int keep_row(int outcome, PyObject *cells, Py_ssize_t row_size, Py_ssize_t room_bytes,
                    Py_ssize_t *size, PyObject *rows_out)
{
    if (outcome <= 0)
        return outcome;
    if (row_size > room_bytes - *size) {
        Py_DECREF(cells);
        return 0;
    }
    int appended = PyList_Append(rows_out, cells);
    Py_DECREF(cells);
    if (appended < 0)
        return -1;
    *size += row_size;
    return 1;
}

/* pg_cells(msg, formats) -> (cells, size) or None: a whole DataRow message decoded as
 * pg_observer.decode_data_row does, with the size ResultCapture.add would count; None
 * when the row does not parse (the caller then takes the Python path, which reports it). */
static PyObject *pg_cells(PyObject *module, PyObject *args)
{
    Py_buffer data;
    PyObject *formats;
    if (!PyArg_ParseTuple(args, "y*O!:pg_cells", &data, &PyList_Type, &formats))
        return NULL;
    Py_ssize_t size = 0;
    PyObject *cells;
    int outcome = pg_row_cells(data.buf, data.len, formats, &size, &cells);
    return cells_done(cells, size, &data, outcome);
}

/* capture_rows(data, pos, end, max_message, gate, formats, rows, room_rows, room_bytes)
 * -> (new_pos, taken, payload_bytes, size)
 *
 * scan_rows for the DataRows the recording keeps: the same walk and the same stops, and
 * each row taken is also decoded as pg_cells does and its cells appended to the list
 * `rows`. It takes at most `room_rows` rows whose cells add up to at most `room_bytes`
 * (what ResultCapture still keeps) and stops before a row that does not parse or would
 * not fit: that row takes the Python path (which reports it, or marks the capture
 * truncated). `size` is the cells' total size as ResultCapture counts it. */
static PyObject *capture_rows(PyObject *module, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t pos, end, max_message, room_rows, room_bytes;
    PyObject *gate_obj, *formats, *rows_out;
    if (!PyArg_ParseTuple(args, "y*nnnOO!O!nn:capture_rows", &data, &pos, &end, &max_message,
                          &gate_obj, &PyList_Type, &formats, &PyList_Type, &rows_out,
                          &room_rows, &room_bytes))
        return NULL;
    const GateObject *gate;
    if (!optional_gate(gate_obj, &data, "capture_rows", &gate))
        return NULL;
    if (!span_ok(&data, pos, end, "capture_rows"))
        return NULL;
    const uint8_t *buf = data.buf;
    Py_ssize_t rows = 0, nbytes = 0, size = 0, mend;
    while (rows < room_rows && (mend = message_end(buf, pos, end, max_message, 'D')) >= 0) {
        if (gate != NULL && !row_clean(gate, buf, pos, mend))
            break;
        Py_ssize_t row_size = 0;
        PyObject *cells;
        int outcome = pg_row_cells(buf + pos, mend - pos, formats, &row_size, &cells);
        int kept = keep_row(outcome, cells, row_size, room_bytes, &size, rows_out);
        if (kept < 0) {
            PyBuffer_Release(&data);
            return NULL;
        }
        if (kept == 0)
            break;
        rows++;
        nbytes += mend - pos - 7;
        pos = mend;
    }
    PyBuffer_Release(&data);
    return Py_BuildValue("(nnnn)", pos, rows, nbytes, size);
}

/* A length-encoded integer at buf[*pos..end) below 0xFB or after 0xFC/0xFD/0xFE: 1 with
 * *n its value and *pos past it; 0 for 0xFB (NULL), 0xFF or a cut-short one. */
static int read_lenenc(const uint8_t *buf, Py_ssize_t end, Py_ssize_t *pos, uint64_t *n)
{
    Py_ssize_t p = *pos;
    if (p >= end)
        return 0;
    uint64_t v = buf[p];
    if (v < 0xFB) {
        p += 1;
    } else if (v == 0xFC && end - p >= 3) {
        v = (uint64_t)buf[p + 1] | (uint64_t)buf[p + 2] << 8;
        p += 3;
    } else if (v == 0xFD && end - p >= 4) {
        v = (uint64_t)buf[p + 1] | (uint64_t)buf[p + 2] << 8 | (uint64_t)buf[p + 3] << 16;
        p += 4;
    } else if (v == 0xFE && end - p >= 9) {
        v = 0;
        for (int k = 8; k >= 1; k--)
            v = v << 8 | buf[p + k];
        p += 9;
    } else {
        return 0;
    }
    *pos = p;
    *n = v;
    return 1;
}

/* One text-protocol row (one length-encoded string per column, 0xFB for NULL) decoded
 * as the MySQL observer keeps it: 1 with *out a new list and its size added to *size, 0
 * when the row does not parse exactly, -1 with an error set. */
static int mysql_row_cells(const uint8_t *buf, Py_ssize_t end, Py_ssize_t ncols,
                           Py_ssize_t *size, PyObject **out)
{
    Py_ssize_t pos = 0;
    *out = NULL;
    if (ncols < 0)
        return 0;
    PyObject *cells = PyList_New(ncols);
    if (cells == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        if (pos < end && buf[pos] == 0xFB) {
            PyList_SET_ITEM(cells, i, Py_NewRef(Py_None));
            pos += 1;
            continue;
        }
        uint64_t n;
        if (!read_lenenc(buf, end, &pos, &n) || n > (uint64_t)(end - pos))
            goto malformed;
        PyObject *cell = text_cell(buf + pos, (Py_ssize_t)n, size);
        if (cell == NULL) {
            Py_DECREF(cells);
            return -1;
        }
        PyList_SET_ITEM(cells, i, cell);
        pos += (Py_ssize_t)n;
    }
    if (pos != end)
        goto malformed;
    *out = cells;
    return 1;
malformed:
    Py_DECREF(cells);
    return 0;
}

/* A binary-protocol row (0x00, NULL bitmap at bit offset 2, then the values) decoded as
 * mysql_observer._cell renders parse_binary_row's values: integers and floats as str()
 * does, DATE/DATETIME/TIMESTAMP as "YYYY-MM-DD[ hh:mm:ss[.ffffff]]", TIME as
 * "[-]hh:mm:ss[.ffffff]", everything else as its length-encoded bytes in UTF-8 (replace).
 * `types` holds two bytes per column: MYSQL_TYPE, unsigned flag. 1 with *out a new list
 * and its size added to *size; 0 for anything irregular (the Python decoder then reads
 * it, and says what is wrong); -1 with an error set. */
static int mysql_binary_row_cells(const uint8_t *buf, Py_ssize_t end, const uint8_t *types,
                                  Py_ssize_t ncols, Py_ssize_t *size, PyObject **out)
{
    *out = NULL;
    Py_ssize_t nbitmap = (ncols + 9) / 8;
    if (end < 1 + nbitmap || buf[0] != 0x00)
        return 0;
    const uint8_t *bitmap = buf + 1;
    Py_ssize_t pos = 1 + nbitmap;
    PyObject *cells = PyList_New(ncols);
    if (cells == NULL)
        return -1;
    char text[96];
    for (Py_ssize_t i = 0; i < ncols; i++) {
        Py_ssize_t bit = i + 2;
        if (bitmap[bit >> 3] & (1 << (bit & 7))) {
            PyList_SET_ITEM(cells, i, Py_NewRef(Py_None));
            continue;
        }
        uint8_t t = types[2 * i];
        int is_unsigned = types[2 * i + 1] != 0;
        PyObject *cell = NULL;
        int width = t == 1 ? 1 : (t == 2 || t == 13) ? 2 : (t == 3 || t == 9) ? 4 : t == 8 ? 8 : 0;
        if (width) {
            if (end - pos < width)
                goto malformed;
            uint64_t u = 0;
            for (int k = width - 1; k >= 0; k--)
                u = u << 8 | buf[pos + k];
            pos += width;
            int n;
            if (is_unsigned) {
                n = snprintf(text, sizeof text, "%llu", (unsigned long long)u);
            } else {
                int64_t v;
                if (width < 8 && (u >> (8 * width - 1)) & 1)
                    v = (int64_t)(u | (~(uint64_t)0 << (8 * width)));
                else
                    v = (int64_t)u;
                n = snprintf(text, sizeof text, "%lld", (long long)v);
            }
            cell = PyUnicode_FromStringAndSize(text, n);
            *size += n;
        } else if (t == 5 || t == 4) { /* DOUBLE, FLOAT: str(float) */
            double d;
            if (t == 5) {
                if (end - pos < 8)
                    goto malformed;
                uint64_t bits = 0;
                for (int k = 7; k >= 0; k--)
                    bits = bits << 8 | buf[pos + k];
                memcpy(&d, &bits, 8); /* IEEE 754 binary64, sent little-endian */
                pos += 8;
            } else {
                if (end - pos < 4)
                    goto malformed;
                uint32_t bits = le32(buf + pos);
                float f;
                memcpy(&f, &bits, 4);
                pos += 4;
                d = (double)f;
            }
            PyObject *num = PyFloat_FromDouble(d);
            if (num == NULL)
                goto error;
            cell = PyObject_Str(num);
            Py_DECREF(num);
            if (cell != NULL)
                *size += PyUnicode_GET_LENGTH(cell); /* ASCII */
        } else if (t == 7 || t == 10 || t == 12 || t == 14) { /* TIMESTAMP, DATE, DATETIME, NEWDATE */
            if (end - pos < 1)
                goto malformed;
            uint8_t n = buf[pos++];
            unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
            unsigned long micro = 0;
            if (n != 0 && n != 4 && n != 7 && n != 11)
                goto malformed;
            if (end - pos < n)
                goto malformed;
            if (n >= 4) {
                year = buf[pos] | buf[pos + 1] << 8;
                month = buf[pos + 2];
                day = buf[pos + 3];
            }
            if (n >= 7) {
                hour = buf[pos + 4];
                minute = buf[pos + 5];
                second = buf[pos + 6];
            }
            if (n == 11)
                micro = le32(buf + pos + 7);
            pos += n;
            int len = snprintf(text, sizeof text, "%04u-%02u-%02u", year, month, day);
            if (hour || minute || second || micro) {
                len += snprintf(text + len, sizeof text - len, " %02u:%02u:%02u", hour, minute,
                                second);
                if (micro)
                    len += snprintf(text + len, sizeof text - len, ".%06lu", micro);
            }
            cell = PyUnicode_FromStringAndSize(text, len);
            *size += len;
        } else if (t == 11) { /* TIME */
            if (end - pos < 1)
                goto malformed;
            uint8_t n = buf[pos++];
            if (n != 0 && n != 8 && n != 12)
                goto malformed;
            if (end - pos < n)
                goto malformed;
            int negative = 0;
            unsigned long long hours = 0;
            unsigned minutes = 0, seconds = 0;
            unsigned long micro = 0;
            if (n >= 8) {
                negative = buf[pos] == 1;
                unsigned long long days = le32(buf + pos + 1);
                hours = days * 24 + buf[pos + 5];
                minutes = buf[pos + 6];
                seconds = buf[pos + 7];
            }
            if (n == 12)
                micro = le32(buf + pos + 8);
            pos += n;
            int len = snprintf(text, sizeof text, "%s%02llu:%02u:%02u", negative ? "-" : "", hours,
                               minutes, seconds);
            if (micro)
                len += snprintf(text + len, sizeof text - len, ".%06lu", micro);
            cell = PyUnicode_FromStringAndSize(text, len);
            *size += len;
        } else if (t == 6) { /* NULL type: no value bytes */
            cell = Py_NewRef(Py_None);
        } else { /* length-encoded bytes */
            uint64_t n;
            if (!read_lenenc(buf, end, &pos, &n) || n > (uint64_t)(end - pos))
                goto malformed;
            cell = text_cell(buf + pos, (Py_ssize_t)n, size);
            pos += (Py_ssize_t)n;
        }
        if (cell == NULL)
            goto error;
        PyList_SET_ITEM(cells, i, cell);
    }
    if (pos != end)
        goto malformed;
    *out = cells;
    return 1;
malformed:
    Py_DECREF(cells);
    return 0;
error:
    Py_DECREF(cells);
    return -1;
}

/* `types` (two bytes per column) as a buffer of an even length, or 0 with an error set. */
static int column_types(PyObject *obj, Py_buffer *view, Py_ssize_t *ncols)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return 0;
    if (view->len % 2) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "types: two bytes per column (type, unsigned)");
        return 0;
    }
    *ncols = view->len / 2;
    return 1;
}

/* mysql_binary_cells(payload, types) -> (cells, size) or None: a binary-protocol row
 * decoded as the MySQL observer keeps it (mysql_binary_row_cells). */
static PyObject *mysql_binary_cells(PyObject *module, PyObject *args)
{
    Py_buffer data, tv;
    PyObject *types_obj;
    Py_ssize_t ncols, size = 0;
    if (!PyArg_ParseTuple(args, "y*O:mysql_binary_cells", &data, &types_obj))
        return NULL;
    if (!column_types(types_obj, &tv, &ncols)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *cells;
    int outcome = mysql_binary_row_cells(data.buf, data.len, tv.buf, ncols, &size, &cells);
    PyBuffer_Release(&tv);
    return cells_done(cells, size, &data, outcome);
}

/* mysql_text_cells(payload, ncols) -> (cells, size) or None: a text-protocol row decoded
 * as the MySQL observer keeps it, with ResultCapture's size; None when it does not parse
 * exactly (messages.parse_text_row then says why). */
static PyObject *mysql_text_cells(PyObject *module, PyObject *args)
{
    Py_buffer data;
    Py_ssize_t ncols, size = 0;
    if (!PyArg_ParseTuple(args, "y*n:mysql_text_cells", &data, &ncols))
        return NULL;
    PyObject *cells;
    int outcome = mysql_row_cells(data.buf, data.len, ncols, &size, &cells);
    return cells_done(cells, size, &data, outcome);
}

/* capture_mysql_rows(data, pos, end, max_payload, seq, gate, ncols, rows, room_rows,
 * room_bytes[, types]) -> (new_pos, taken, payload_bytes, next_seq, size)
 *
 * scan_mysql_rows for the rows the recording keeps: the same walk and the same stops,
 * and each row taken is also decoded as mysql_text_cells does (with `types`, two bytes
 * per column: binary rows, as mysql_binary_cells does) and its cells appended to the
 * list `rows`. It takes at most `room_rows` rows whose cells add up to at most
 * `room_bytes` (what ResultCapture still keeps) and stops before a row that does not
 * parse or would not fit: that row takes the Python path (which reports it, or marks
 * the capture truncated). `size` is the cells' total size as ResultCapture counts it. */
static PyObject *capture_mysql_rows(PyObject *module, PyObject *args)
{
    Py_buffer data, tv = {0};
    Py_ssize_t pos, end, max_payload, ncols, room_rows, room_bytes;
    int seq;
    PyObject *gate_obj, *rows_out, *types_obj = Py_None;
    if (!PyArg_ParseTuple(args, "y*nnniOnO!nn|O:capture_mysql_rows", &data, &pos, &end,
                          &max_payload, &seq, &gate_obj, &ncols, &PyList_Type, &rows_out,
                          &room_rows, &room_bytes, &types_obj))
        return NULL;
    const GateObject *gate;
    if (!optional_gate(gate_obj, &data, "capture_mysql_rows", &gate))
        return NULL;
    if (!span_ok(&data, pos, end, "capture_mysql_rows"))
        return NULL;
    int binary = types_obj != Py_None;
    if (binary) {
        Py_ssize_t ntypes;
        if (!column_types(types_obj, &tv, &ntypes)) {
            PyBuffer_Release(&data);
            return NULL;
        }
        if (ntypes != ncols) {
            PyBuffer_Release(&tv);
            PyBuffer_Release(&data);
            PyErr_SetString(PyExc_ValueError, "capture_mysql_rows: ncols and types disagree");
            return NULL;
        }
    }
    const uint8_t *buf = data.buf;
    Py_ssize_t rows = 0, nbytes = 0, size = 0;
    seq &= 0xFF;
    while (rows < room_rows) {
        Py_ssize_t len = mysql_row_packet(buf, pos, end, max_payload, seq, gate);
        if (len < 0)
            break;
        Py_ssize_t row_size = 0;
        PyObject *cells;
        int outcome = binary ? mysql_binary_row_cells(buf + pos + 4, len, tv.buf, ncols,
                                                      &row_size, &cells)
                             : mysql_row_cells(buf + pos + 4, len, ncols, &row_size, &cells);
        int kept = keep_row(outcome, cells, row_size, room_bytes, &size, rows_out);
        if (kept < 0)
            goto error;
        if (kept == 0)
            break;
        rows++;
        nbytes += len;
        seq = (seq + 1) & 0xFF;
        pos += 4 + len;
    }
    if (binary)
        PyBuffer_Release(&tv);
    PyBuffer_Release(&data);
    return Py_BuildValue("(nnnin)", pos, rows, nbytes, seq, size);
error:
    if (binary)
        PyBuffer_Release(&tv);
    PyBuffer_Release(&data);
    return NULL;
}

/* ------------------------------------------------------------------ Bind */

/* A NUL-terminated name at buf[*pos..end) decoded strictly as UTF-8; NULL without an error
 * set when there is no NUL or the bytes are not UTF-8 (the Python parser then raises). */
static PyObject *bind_name(const uint8_t *buf, Py_ssize_t *pos, Py_ssize_t end)
{
    const uint8_t *nul = memchr(buf + *pos, 0, (size_t)(end - *pos));
    if (nul == NULL)
        return NULL;
    Py_ssize_t n = nul - (buf + *pos);
    PyObject *s = PyUnicode_DecodeUTF8((const char *)buf + *pos, n, NULL);
    if (s == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            return NULL;
        PyErr_Clear();
        return NULL;
    }
    *pos += n + 1;
    return s;
}

/* pg_bind(msg) -> (portal, statement, params, result_formats, any_binary) or None: a whole
 * Bind message as pg_observer._parse_bind reads it, except that a binary-format parameter
 * comes back as its bytes (any_binary says there is one) for the caller to render by type.
 * None for anything irregular -- a missing NUL, a name that is not UTF-8, a negative count,
 * a value past the end, a truncated header: the Python parser then runs and decides. */
static PyObject *pg_bind(PyObject *module, PyObject *args)
{
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*:pg_bind", &data))
        return NULL;
    const uint8_t *buf = data.buf;
    Py_ssize_t end = data.len, pos = 5;
    PyObject *portal = NULL, *stmt = NULL, *params = NULL, *rfmts = NULL, *out = NULL;
    int any_binary = 0;
    if (end < 5)
        goto done;
    if ((portal = bind_name(buf, &pos, end)) == NULL || (stmt = bind_name(buf, &pos, end)) == NULL)
        goto done;
    if (end - pos < 2)
        goto done;
    int nfmt = be16s(buf + pos);
    pos += 2;
    if (nfmt < 0 || end - pos < 2 * (Py_ssize_t)nfmt + 2)
        goto done;
    const uint8_t *pfmts = buf + pos;
    pos += 2 * (Py_ssize_t)nfmt;
    int nparams = be16s(buf + pos);
    pos += 2;
    if (nparams < 0)
        goto done;
    if ((params = PyList_New(nparams)) == NULL)
        goto done;
    for (int i = 0; i < nparams; i++) {
        if (end - pos < 4)
            goto done;
        int32_t len = (int32_t)be32(buf + pos);
        pos += 4;
        PyObject *v;
        if (len < 0) {
            v = Py_NewRef(Py_None);
        } else {
            if (end - pos < len)
                goto done;
            int fmt = nfmt == 1 ? be16s(pfmts) : (i < nfmt ? be16s(pfmts + 2 * i) : 0);
            if (fmt == 1) {
                v = PyBytes_FromStringAndSize((const char *)buf + pos, len);
                any_binary = 1;
            } else {
                v = PyUnicode_DecodeUTF8((const char *)buf + pos, len, "replace");
            }
            if (v == NULL)
                goto done;
            pos += len;
        }
        PyList_SET_ITEM(params, i, v);
    }
    if (end - pos < 2)
        goto done;
    int nres = be16s(buf + pos);
    pos += 2;
    if (nres < 0 || end - pos < 2 * (Py_ssize_t)nres)
        goto done;
    if ((rfmts = PyList_New(nres)) == NULL)
        goto done;
    for (int i = 0; i < nres; i++) {
        PyObject *f = PyLong_FromLong(be16s(buf + pos + 2 * i));
        if (f == NULL)
            goto done;
        PyList_SET_ITEM(rfmts, i, f);
    }
    out = Py_BuildValue("(OOOOO)", portal, stmt, params, rfmts, any_binary ? Py_True : Py_False);
done:
    PyBuffer_Release(&data);
    Py_XDECREF(portal);
    Py_XDECREF(stmt);
    Py_XDECREF(params);
    Py_XDECREF(rfmts);
    if (out == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return out;
}

/* ------------------------------------------------------------------ pg_text_key */
/* sql.pg_shapes.text_key in C, the regex there being the reference (a property test holds
 * the two to the same answer): an ASCII text with its plain literals blanked -- a run of
 * 1 to 9 digits, or a single-quoted string with no quote or backslash inside, not preceded
 * by [A-Za-z0-9_$.'&] and not followed by [A-Za-z0-9_$.'] -- as NUL-letter-NUL ("i", "0"
 * for all zeros, "s", "e" for the empty string); None when it has none or is not ASCII.
 * The regex scans left to right, leftmost match first, resuming after each match; so does
 * this. */
static inline int tk_word(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline int tk_before(unsigned char c) /* may not precede a literal */
{
    return tk_word(c) || c == '$' || c == '.' || c == '\'' || c == '&';
}

static inline int tk_after(unsigned char c) /* may not follow a literal */
{
    return tk_word(c) || c == '$' || c == '.' || c == '\'';
}

static PyObject *pg_text_key(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "pg_text_key(sql): sql must be a str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(arg))
        Py_RETURN_NONE;
    const unsigned char *t = (const unsigned char *)PyUnicode_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    /* each literal is at least 1 character and becomes 3: at most 3n bytes */
    char small[512];
    char *out = n * 3 <= (Py_ssize_t)sizeof small ? small : PyMem_Malloc((size_t)(n * 3 + 1));
    if (out == NULL)
        return PyErr_NoMemory();
    Py_ssize_t o = 0, i = 0, found = 0;
    while (i < n) {
        unsigned char c = t[i];
        if ((c == '\'' || (c >= '0' && c <= '9')) && (i == 0 || !tk_before(t[i - 1]))) {
            Py_ssize_t j = i;
            char kind = 0;
            if (c == '\'') {
                j = i + 1;
                while (j < n && t[j] != '\'' && t[j] != '\\')
                    j++;
                if (j < n && t[j] == '\'' && (j + 1 >= n || !tk_after(t[j + 1]))) {
                    kind = j == i + 1 ? 'e' : 's';
                    j++;
                }
            } else {
                int zero = 1;
                while (j < n && t[j] >= '0' && t[j] <= '9') {
                    zero &= t[j] == '0';
                    j++;
                }
                if (j - i <= 9 && (j >= n || !tk_after(t[j])))
                    kind = zero ? '0' : 'i';
            }
            if (kind) {
                out[o++] = '\0';
                out[o++] = kind;
                out[o++] = '\0';
                i = j;
                found = 1;
                continue;
            }
        }
        out[o++] = (char)c;
        i++;
    }
    PyObject *key = found ? PyUnicode_FromStringAndSize(out, o) : Py_NewRef(Py_None);
    if (out != small)
        PyMem_Free(out);
    return key;
}

static PyMethodDef module_methods[] = {
    {"pg_text_key", pg_text_key, METH_O,
     "pg_text_key(sql) -> str | None: sql.pg_shapes.text_key, compiled"},
    {"scan_rows", scan_rows, METH_VARARGS,
     "scan_rows(data, pos, end, max_message, gate) -> (pos, rows, payload_bytes)"},
    {"scan_copy", scan_copy, METH_VARARGS,
     "scan_copy(data, pos, end, max_message, gate, text_format) -> (pos, rows)"},
    {"pg_cells", pg_cells, METH_VARARGS,
     "pg_cells(msg, formats) -> (cells, size) | None: a DataRow as the recording keeps it"},
    {"mysql_text_cells", mysql_text_cells, METH_VARARGS,
     "mysql_text_cells(payload, ncols) -> (cells, size) | None: a MySQL text row, likewise"},
    {"pg_bind", pg_bind, METH_VARARGS,
     "pg_bind(msg) -> (portal, statement, params, result_formats, any_binary) | None"},
    {"capture_rows", capture_rows, METH_VARARGS,
     "capture_rows(data, pos, end, max_message, gate, formats, rows, room_rows, room_bytes) "
     "-> (new_pos, taken, payload_bytes, size)"},
    {"mysql_binary_cells", mysql_binary_cells, METH_VARARGS,
     "mysql_binary_cells(payload, types) -> (cells, size) or None"},
    {"capture_mysql_rows", capture_mysql_rows, METH_VARARGS,
     "capture_mysql_rows(data, pos, end, max_payload, seq, gate, ncols, rows, room_rows, "
     "room_bytes) -> (new_pos, taken, payload_bytes, next_seq, size)"},
    {"scan_mysql_rows", scan_mysql_rows, METH_VARARGS,
     "scan_mysql_rows(data, pos, end, max_payload, seq, gate) -> (pos, rows, payload_bytes, seq)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef rowscan_module = {
    PyModuleDef_HEAD_INIT, "wardgate._rowscan",
    "Compiled DataRow walk and masking gate (see _rowscan.c).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rowscan(void)
{
    for (int c = 0; c < 256; c++) {
        if (c >= '0' && c <= '9')
            CLS[c] = C_DIGIT;
        else if (c >= 'A' && c <= 'Z')
            CLS[c] = C_UPPER;
        else if (c >= 'a' && c <= 'z')
            CLS[c] = C_LOWER;
        else if (c >= 0x80)
            CLS[c] = C_HIGH;
        else
            CLS[c] = C_SEP;
        LOWER[c] = (uint8_t)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        IS_DIGIT[c] = CLS[c] == C_DIGIT;
        IS_UPPER[c] = CLS[c] == C_UPPER;
        RUN_KEEP[c] = (CLS[c] == C_DIGIT || CLS[c] == C_SEP) ? ~(Py_ssize_t)0 : 0;
    }
    if (PyType_Ready(&GateType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&rowscan_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&GateType);
    if (PyModule_AddObject(m, "Gate", (PyObject *)&GateType) < 0) {
        Py_DECREF(&GateType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
