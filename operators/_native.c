/* The alert flow's hottest pure work in C: bkmonitor's count_md5, the common case of
 * Event.clean(), the bounds scan of a message's bytes, an alert's route key, an alert's writes,
 * the push-once script's arguments and the packing of a Redis command. Each function gives
 * exactly what the Python it stands for gives (operators/md5.py, operators/alert.py,
 * operators/bounds.py, operators/routing.py, state/writes.py, state/idempotent.py, hiredis),
 * built from the same CPython operations (str(), str.upper(), dict order); for anything outside
 * the common case it returns None and the caller runs the Python code, which also names what is
 * wrong with a message. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- MD5 (RFC 1321) ---------------------------------------------------------------- */

typedef char hex32[32];

#define F(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define G(b, c, d) ((c) ^ ((d) & ((b) ^ (c))))
#define H(b, c, d) ((b) ^ (c) ^ (d))
#define I(b, c, d) ((c) ^ ((b) | ~(d)))
#define STEP(f, a, b, c, d, x, k, s)                    \
    (a) += f((b), (c), (d)) + (x) + (k);                \
    (a) = (((a) << (s)) | ((a) >> (32 - (s)))) + (b)

/* One 64-byte block, the 64 steps unrolled; the constants are floor(abs(sin(i + 1)) * 2^32). */
static void md5_block(uint32_t h[4], const uint8_t *p) {
    uint32_t m[16];
    for (int i = 0; i < 16; i++) {
        m[i] = (uint32_t)p[4 * i] | ((uint32_t)p[4 * i + 1] << 8) |
               ((uint32_t)p[4 * i + 2] << 16) | ((uint32_t)p[4 * i + 3] << 24);
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    STEP(F, a, b, c, d, m[ 0], 0xd76aa478u, 7);
    STEP(F, d, a, b, c, m[ 1], 0xe8c7b756u, 12);
    STEP(F, c, d, a, b, m[ 2], 0x242070dbu, 17);
    STEP(F, b, c, d, a, m[ 3], 0xc1bdceeeu, 22);
    STEP(F, a, b, c, d, m[ 4], 0xf57c0fafu, 7);
    STEP(F, d, a, b, c, m[ 5], 0x4787c62au, 12);
    STEP(F, c, d, a, b, m[ 6], 0xa8304613u, 17);
    STEP(F, b, c, d, a, m[ 7], 0xfd469501u, 22);
    STEP(F, a, b, c, d, m[ 8], 0x698098d8u, 7);
    STEP(F, d, a, b, c, m[ 9], 0x8b44f7afu, 12);
    STEP(F, c, d, a, b, m[10], 0xffff5bb1u, 17);
    STEP(F, b, c, d, a, m[11], 0x895cd7beu, 22);
    STEP(F, a, b, c, d, m[12], 0x6b901122u, 7);
    STEP(F, d, a, b, c, m[13], 0xfd987193u, 12);
    STEP(F, c, d, a, b, m[14], 0xa679438eu, 17);
    STEP(F, b, c, d, a, m[15], 0x49b40821u, 22);
    STEP(G, a, b, c, d, m[ 1], 0xf61e2562u, 5);
    STEP(G, d, a, b, c, m[ 6], 0xc040b340u, 9);
    STEP(G, c, d, a, b, m[11], 0x265e5a51u, 14);
    STEP(G, b, c, d, a, m[ 0], 0xe9b6c7aau, 20);
    STEP(G, a, b, c, d, m[ 5], 0xd62f105du, 5);
    STEP(G, d, a, b, c, m[10], 0x02441453u, 9);
    STEP(G, c, d, a, b, m[15], 0xd8a1e681u, 14);
    STEP(G, b, c, d, a, m[ 4], 0xe7d3fbc8u, 20);
    STEP(G, a, b, c, d, m[ 9], 0x21e1cde6u, 5);
    STEP(G, d, a, b, c, m[14], 0xc33707d6u, 9);
    STEP(G, c, d, a, b, m[ 3], 0xf4d50d87u, 14);
    STEP(G, b, c, d, a, m[ 8], 0x455a14edu, 20);
    STEP(G, a, b, c, d, m[13], 0xa9e3e905u, 5);
    STEP(G, d, a, b, c, m[ 2], 0xfcefa3f8u, 9);
    STEP(G, c, d, a, b, m[ 7], 0x676f02d9u, 14);
    STEP(G, b, c, d, a, m[12], 0x8d2a4c8au, 20);
    STEP(H, a, b, c, d, m[ 5], 0xfffa3942u, 4);
    STEP(H, d, a, b, c, m[ 8], 0x8771f681u, 11);
    STEP(H, c, d, a, b, m[11], 0x6d9d6122u, 16);
    STEP(H, b, c, d, a, m[14], 0xfde5380cu, 23);
    STEP(H, a, b, c, d, m[ 1], 0xa4beea44u, 4);
    STEP(H, d, a, b, c, m[ 4], 0x4bdecfa9u, 11);
    STEP(H, c, d, a, b, m[ 7], 0xf6bb4b60u, 16);
    STEP(H, b, c, d, a, m[10], 0xbebfbc70u, 23);
    STEP(H, a, b, c, d, m[13], 0x289b7ec6u, 4);
    STEP(H, d, a, b, c, m[ 0], 0xeaa127fau, 11);
    STEP(H, c, d, a, b, m[ 3], 0xd4ef3085u, 16);
    STEP(H, b, c, d, a, m[ 6], 0x04881d05u, 23);
    STEP(H, a, b, c, d, m[ 9], 0xd9d4d039u, 4);
    STEP(H, d, a, b, c, m[12], 0xe6db99e5u, 11);
    STEP(H, c, d, a, b, m[15], 0x1fa27cf8u, 16);
    STEP(H, b, c, d, a, m[ 2], 0xc4ac5665u, 23);
    STEP(I, a, b, c, d, m[ 0], 0xf4292244u, 6);
    STEP(I, d, a, b, c, m[ 7], 0x432aff97u, 10);
    STEP(I, c, d, a, b, m[14], 0xab9423a7u, 15);
    STEP(I, b, c, d, a, m[ 5], 0xfc93a039u, 21);
    STEP(I, a, b, c, d, m[12], 0x655b59c3u, 6);
    STEP(I, d, a, b, c, m[ 3], 0x8f0ccc92u, 10);
    STEP(I, c, d, a, b, m[10], 0xffeff47du, 15);
    STEP(I, b, c, d, a, m[ 1], 0x85845dd1u, 21);
    STEP(I, a, b, c, d, m[ 8], 0x6fa87e4fu, 6);
    STEP(I, d, a, b, c, m[15], 0xfe2ce6e0u, 10);
    STEP(I, c, d, a, b, m[ 6], 0xa3014314u, 15);
    STEP(I, b, c, d, a, m[13], 0x4e0811a1u, 21);
    STEP(I, a, b, c, d, m[ 4], 0xf7537e82u, 6);
    STEP(I, d, a, b, c, m[11], 0xbd3af235u, 10);
    STEP(I, c, d, a, b, m[ 2], 0x2ad7d2bbu, 15);
    STEP(I, b, c, d, a, m[ 9], 0xeb86d391u, 21);
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

static void md5_hex(const char *data, size_t len, hex32 out) {
    static const char digits[] = "0123456789abcdef";
    uint32_t h[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
    const uint8_t *bytes = (const uint8_t *)data;
    size_t done = 0;
    for (; done + 64 <= len; done += 64) {
        md5_block(h, bytes + done);
    }
    uint8_t tail[128];
    size_t rest = len - done, padded = rest < 56 ? 64 : 128;
    memcpy(tail, bytes + done, rest);
    tail[rest] = 0x80;
    memset(tail + rest + 1, 0, padded - rest - 1);
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) {
        tail[padded - 8 + i] = (uint8_t)(bits >> (8 * i));
    }
    md5_block(h, tail);
    if (padded == 128) {
        md5_block(h, tail + 64);
    }
    for (int i = 0; i < 16; i++) {
        uint8_t byte = (uint8_t)(h[i / 4] >> (8 * (i % 4)));
        out[2 * i] = digits[byte >> 4];
        out[2 * i + 1] = digits[byte & 15];
    }
}

/* ---- count_md5 ----------------------------------------------------------------------- */

/* Results of the digest functions: done, a Python error is set, or a value of a type only the
 * Python code digests (no error set). */
enum { DONE = 0, FAILED = -1, UNSUPPORTED = -2 };

static int md5_of_str(PyObject *text, hex32 out) {
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) {
        return FAILED;
    }
    md5_hex(utf8, (size_t)size, out);
    return DONE;
}

static int md5_of_str_of(PyObject *value, hex32 out) {
    PyObject *text = PyObject_Str(value);
    if (text == NULL) {
        return FAILED;
    }
    int result = md5_of_str(text, out);
    Py_DECREF(text);
    return result;
}

static int compare_digests(const void *left, const void *right) {
    return memcmp(left, right, sizeof(hex32));
}

/* The md5 of str(sorted(digests)): "['d1', 'd2', ...]" (a hex digest needs no quoting). */
static int digests_md5(hex32 *digests, Py_ssize_t count, hex32 out) {
    if (count == 0) {
        md5_hex("[]", 2, out);
        return DONE;
    }
    qsort(digests, (size_t)count, sizeof(hex32), compare_digests);
    size_t size = 2 + (size_t)count * 36 - 2;
    char stack[36 * 8 + 2];
    char *text = size <= sizeof(stack) ? stack : PyMem_Malloc(size);
    if (text == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    char *at = text;
    *at++ = '[';
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i > 0) {
            *at++ = ',';
            *at++ = ' ';
        }
        *at++ = '\'';
        memcpy(at, digests[i], sizeof(hex32));
        at += sizeof(hex32);
        *at++ = '\'';
    }
    *at++ = ']';
    md5_hex(text, size, out);
    if (text != stack) {
        PyMem_Free(text);
    }
    return DONE;
}

static int count_md5(PyObject *value, hex32 out);

static int sequence_md5(PyObject *items, hex32 out) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    PyObject **members = PySequence_Fast_ITEMS(items);
    hex32 stack[16];
    hex32 *digests = count <= 16 ? stack : PyMem_Malloc((size_t)count * sizeof(hex32));
    if (digests == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    int result = DONE;
    for (Py_ssize_t i = 0; i < count && result == DONE; i++) {
        result = count_md5(members[i], digests[i]);
    }
    if (result == DONE) {
        result = digests_md5(digests, count, out);
    }
    if (digests != stack) {
        PyMem_Free(digests);
    }
    return result;
}

/* Each key's pair digest: digests_md5([md5(str(key)), md5(count_md5(value))]). */
static int dict_md5(PyObject *dict, hex32 out) {
    PyObject *keys = PyDict_Keys(dict);
    if (keys == NULL) {
        return FAILED;
    }
    if (PyList_Sort(keys) < 0) {
        Py_DECREF(keys);
        return FAILED;
    }
    Py_ssize_t count = PyList_GET_SIZE(keys);
    hex32 stack[16];
    hex32 *digests = count <= 16 ? stack : PyMem_Malloc((size_t)count * sizeof(hex32));
    if (digests == NULL) {
        Py_DECREF(keys);
        PyErr_NoMemory();
        return FAILED;
    }
    int result = DONE;
    for (Py_ssize_t i = 0; i < count && result == DONE; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *member = PyDict_GetItemWithError(dict, key);
        hex32 pair[2], inner;
        if (member == NULL) {
            result = FAILED;
            if (!PyErr_Occurred()) {
                PyErr_SetObject(PyExc_KeyError, key);
            }
            break;
        }
        result = PyUnicode_CheckExact(key) ? md5_of_str(key, pair[0]) : md5_of_str_of(key, pair[0]);
        if (result == DONE) {
            result = count_md5(member, inner);
        }
        if (result == DONE) {
            md5_hex(inner, sizeof(hex32), pair[1]);
            result = digests_md5(pair, 2, digests[i]);
        }
    }
    if (result == DONE) {
        result = digests_md5(digests, count, out);
    }
    if (digests != stack) {
        PyMem_Free(digests);
    }
    Py_DECREF(keys);
    return result;
}

static int count_md5(PyObject *value, hex32 out) {
    if (PyUnicode_CheckExact(value)) {
        return md5_of_str(value, out);
    }
    if (value == Py_None || PyBool_Check(value) || PyLong_CheckExact(value) ||
        PyFloat_CheckExact(value)) {
        return md5_of_str_of(value, out);
    }
    int list = PyList_CheckExact(value) || PyTuple_CheckExact(value);
    if (!list && !PyDict_CheckExact(value)) {
        return UNSUPPORTED;
    }
    if (Py_EnterRecursiveCall(" in count_md5")) {
        return FAILED;
    }
    int result = list ? sequence_md5(value, out) : dict_md5(value, out);
    Py_LeaveRecursiveCall();
    return result;
}

static PyObject *hex_str(const hex32 digest) {
    return PyUnicode_FromStringAndSize(digest, sizeof(hex32));
}

static PyObject *py_count_md5(PyObject *Py_UNUSED(module), PyObject *value) {
    hex32 digest;
    int result = count_md5(value, digest);
    if (result == FAILED) {
        return NULL;
    }
    if (result == UNSUPPORTED) {
        Py_RETURN_NONE;
    }
    return hex_str(digest);
}

/* ---- remembered digests ----------------------------------------------------------------- */

/* Digests of what recurs from alert to alert (a plugin, a status; an alert's dedupe values as a
 * whole), in tables emptied when full rather than grown. */
#define TEXT_MEMO_MAX 96
#define MEMO_KEPT 8192
static PyObject *text_digests, *list_digests;

static int remember(PyObject *memo, PyObject *key, const hex32 digest) {
    if (PyDict_GET_SIZE(memo) >= MEMO_KEPT) {
        PyDict_Clear(memo);
    }
    PyObject *text = hex_str(digest);
    if (text == NULL) {
        return FAILED;
    }
    int result = PyDict_SetItem(memo, key, text);
    Py_DECREF(text);
    return result < 0 ? FAILED : DONE;
}

/* 1 and a copy of the remembered digest of key, 0 when none is, -1 on an error. */
static int recall(PyObject *memo, PyObject *key, hex32 out) {
    PyObject *digest = PyDict_GetItemWithError(memo, key);
    if (digest == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    memcpy(out, PyUnicode_DATA(digest), sizeof(hex32));
    return 1;
}

/* count_md5 of a value that recurs: a short text's digest is remembered. */
static int recurring_md5(PyObject *value, hex32 out) {
    if (!PyUnicode_CheckExact(value) || PyUnicode_GET_LENGTH(value) > TEXT_MEMO_MAX) {
        return count_md5(value, out);
    }
    int found = recall(text_digests, value, out);
    if (found != 0) {
        return found < 0 ? FAILED : DONE;
    }
    int result = md5_of_str(value, out);
    return result == DONE ? remember(text_digests, value, out) : result;
}

/* A key for remembering the digest of a list: its values and their types, or NULL (no error)
 * when one is not a str, int, bool or None (whose equal values always print alike). */
static PyObject *exact_key(PyObject *values) {
    Py_ssize_t count = PyList_GET_SIZE(values);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyList_GET_ITEM(values, i);
        if (!PyUnicode_CheckExact(value) && !PyLong_CheckExact(value) && !PyBool_Check(value) &&
            value != Py_None) {
            return NULL;
        }
    }
    PyObject *key = PyTuple_New(2 * count);
    if (key == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = PyList_GET_ITEM(values, i);
        PyTuple_SET_ITEM(key, i, Py_NewRef(value));
        PyTuple_SET_ITEM(key, count + i, Py_NewRef((PyObject *)Py_TYPE(value)));
    }
    return key;
}

/* count_md5 of a list that recurs as a whole (an alert's dedupe values). */
static int recurring_list_md5(PyObject *values, hex32 out) {
    PyObject *key = exact_key(values);
    if (key == NULL) {
        return PyErr_Occurred() ? FAILED : count_md5(values, out);
    }
    int found = recall(list_digests, key, out);
    int result = found < 0 ? FAILED : DONE;
    if (found == 0) {
        result = count_md5(values, out);
        if (result == DONE) {
            result = remember(list_digests, key, out);
        }
    }
    Py_DECREF(key);
    return result;
}

/* ---- JSON of a flat object ----------------------------------------------------------------- */

/* A string json.dumps writes as itself in quotes: printable ASCII, no quote or backslash. */
static int safe_json_text(PyObject *value) {
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value)) {
        return 0;
    }
    const Py_UCS1 *chars = PyUnicode_1BYTE_DATA(value);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(value); i++) {
        if (chars[i] < 0x20 || chars[i] > 0x7e || chars[i] == '"' || chars[i] == '\\') {
            return 0;
        }
    }
    return 1;
}

static Py_UCS1 *quoted(Py_UCS1 *at, PyObject *text) {
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    *at++ = '"';
    memcpy(at, PyUnicode_1BYTE_DATA(text), (size_t)size);
    at += size;
    *at++ = '"';
    return at;
}

/* json.dumps of an object whose keys and values are all such strings ({"k": "v", ...}); NULL
 * without an error for any other object. */
static PyObject *flat_object_json(PyObject *object) {
    Py_ssize_t at = 0, size = 2, count = 0;
    PyObject *key, *value;
    while (PyDict_Next(object, &at, &key, &value)) {
        if (!safe_json_text(key) || !safe_json_text(value)) {
            return NULL;
        }
        size += (count++ > 0 ? 2 : 0) + PyUnicode_GET_LENGTH(key) + PyUnicode_GET_LENGTH(value) + 6;
    }
    PyObject *text = PyUnicode_New(size, 127);
    if (text == NULL) {
        return NULL;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    *out++ = '{';
    at = 0;
    while (PyDict_Next(object, &at, &key, &value)) {
        if (out > PyUnicode_1BYTE_DATA(text) + 1) {
            *out++ = ',';
            *out++ = ' ';
        }
        out = quoted(out, key);
        *out++ = ':';
        *out++ = ' ';
        out = quoted(out, value);
    }
    *out = '}';
    return text;
}

/* ---- clean_alert ----------------------------------------------------------------------- */

enum {
    F_EVENT_ID, F_PLUGIN_ID, F_ALERT_NAME, F_BK_BIZ_ID, F_STRATEGY_ID, F_STATUS, F_TARGET_TYPE,
    F_TARGET, F_METRIC, F_TAGS, F_TIME, F_BK_INGEST_TIME, F_DEDUPE_KEYS, F_DATA_TYPE,
    F_SEVERITY, F_CREATE_TIME, F_ID, F_DEDUPE_MD5, F_ACCESS_TIME, F_KEY, F_VALUE,
    F_DISPLAY_KEY, F_DISPLAY_VALUE, F_EMPTY, F_ABNORMAL, F_EVENT, F_UPPER, F_LOWER, F_TAGS_DOT,
    F_COUNT
};
static const char *const FIELD_NAMES[F_COUNT] = {
    "event_id", "plugin_id", "alert_name", "bk_biz_id", "strategy_id", "status", "target_type",
    "target", "metric", "tags", "time", "bk_ingest_time", "dedupe_keys", "data_type",
    "severity", "create_time", "id", "dedupe_md5", "access_time", "key", "value",
    "display_key", "display_value", "", "ABNORMAL", "event", "upper", "lower", "tags."};
static PyObject *S[F_COUNT];

/* Frozen sets and tuples mirroring operators/alert.py's constants. */
static PyObject *BUILTIN_TARGET_TYPES, *FINAL_STATUSES, *DATA_TYPES, *TARGETLESS_TYPES;
static PyObject *DEDUPE_WITH_STRATEGY, *DEDUPE_WITHOUT_STRATEGY;

static int exact_number(PyObject *value) {
    return PyLong_CheckExact(value) || PyFloat_CheckExact(value);
}

/* operators.alert._plainly_valid on a dict without None values. */
static int plainly_valid(PyObject *data) {
    PyObject *value = PyDict_GetItem(data, S[F_EVENT_ID]);
    if (value == NULL || !(PyUnicode_CheckExact(value) || PyLong_CheckExact(value))) {
        return 0;
    }
    value = PyDict_GetItem(data, S[F_PLUGIN_ID]);
    if (value == NULL || !PyUnicode_CheckExact(value) || PyUnicode_GET_LENGTH(value) == 0) {
        return 0;
    }
    value = PyDict_GetItem(data, S[F_ALERT_NAME]);
    if (value == NULL || !PyUnicode_CheckExact(value) || PyUnicode_GET_LENGTH(value) == 0) {
        return 0;
    }
    value = PyDict_GetItem(data, S[F_BK_BIZ_ID]);
    if (value == NULL || !PyLong_CheckExact(value)) {
        return 0;
    }
    value = PyDict_GetItem(data, S[F_STRATEGY_ID]);
    if (value != NULL && !PyLong_CheckExact(value)) {
        return 0;
    }
    value = PyDict_GetItem(data, S[F_STATUS]);
    if (value != NULL && !PyUnicode_CheckExact(value)) {
        return 0;
    }
    value = PyDict_GetItem(data, S[F_TARGET_TYPE]);
    if (value != NULL && !PyUnicode_CheckExact(value)) {
        return 0;
    }
    value = PyDict_GetItem(data, S[F_METRIC]);
    if (value != NULL && !PyUnicode_CheckExact(value) && !PyList_CheckExact(value)) {
        return 0;
    }
    PyObject *tags = PyDict_GetItem(data, S[F_TAGS]);
    if (tags != NULL && !PyList_CheckExact(tags)) {
        return 0;
    }
    PyObject *time = PyDict_GetItem(data, S[F_TIME]);
    PyObject *ingest = PyDict_GetItem(data, S[F_BK_INGEST_TIME]);
    if (time == NULL) {
        if (ingest == NULL || !exact_number(ingest)) {
            return 0;
        }
    } else if (!exact_number(time) || (ingest != NULL && !exact_number(ingest))) {
        return 0;
    }
    value = PyDict_GetItem(data, S[F_DEDUPE_KEYS]);
    if (value != NULL && PyList_CheckExact(value)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
            if (!PyUnicode_CheckExact(PyList_GET_ITEM(value, i))) {
                return 0;
            }
        }
    }
    if (tags != NULL) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tags); i++) {
            PyObject *tag = PyList_GET_ITEM(tags, i);
            if (!PyDict_CheckExact(tag) || PyDict_GetItem(tag, S[F_KEY]) == NULL ||
                PyDict_GetItem(tag, S[F_VALUE]) == NULL) {
                return 0;
            }
        }
    }
    return 1;
}

/* A new reference to value.upper() (or .lower()): Python's own method, for Unicode's rules. */
static PyObject *call_method(PyObject *text, int name) {
    return PyObject_CallMethodNoArgs(text, S[name]);
}

/* text.upper() (or .lower(), by method) when that is one of known, else fallback; fallback for
 * an absent text. A new reference, NULL on an error. */
static PyObject *folded_or(PyObject *text, int method, PyObject *known, PyObject *fallback) {
    if (text == NULL) {
        return Py_NewRef(fallback);
    }
    PyObject *folded = call_method(text, method);
    int found = folded == NULL ? -1 : PySequence_Contains(known, folded);
    if (found > 0) {
        return folded;
    }
    Py_XDECREF(folded);
    return found < 0 ? NULL : Py_NewRef(fallback);
}

/* _clean_target_type: "" for "", the upper case of a builtin type, else the value itself. */
static PyObject *clean_target_type(PyObject *value) {
    if (value == NULL || PyUnicode_GET_LENGTH(value) == 0) {
        return Py_NewRef(S[F_EMPTY]);
    }
    return folded_or(value, F_UPPER, BUILTIN_TARGET_TYPES, value);
}

/* _clean_dedupe_keys: the default fields (alert_name or strategy_id left out), then the
 * message's own that are not yet there. */
static PyObject *clean_dedupe_keys(PyObject *data) {
    PyObject *strategy = PyDict_GetItem(data, S[F_STRATEGY_ID]);
    int with_strategy = strategy != NULL ? PyObject_IsTrue(strategy) : 0;
    if (with_strategy < 0) {
        return NULL;
    }
    PyObject *keys = PySequence_List(with_strategy ? DEDUPE_WITH_STRATEGY : DEDUPE_WITHOUT_STRATEGY);
    if (keys == NULL) {
        return NULL;
    }
    PyObject *extra = PyDict_GetItem(data, S[F_DEDUPE_KEYS]);
    if (extra != NULL && PyList_CheckExact(extra)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(extra); i++) {
            PyObject *key = PyList_GET_ITEM(extra, i);
            int present = PySequence_Contains(keys, key);
            if (present < 0 || (!present && PyList_Append(keys, key) < 0)) {
                Py_DECREF(keys);
                return NULL;
            }
        }
    }
    return keys;
}

/* _clean_tags, with the Python function for a value that is not a string. */
static PyObject *clean_tags(PyObject *tags, PyObject *clean_value) {
    Py_ssize_t count = tags == NULL ? 0 : PyList_GET_SIZE(tags);
    PyObject *cleaned = PyList_New(count);
    if (cleaned == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *tag = PyList_GET_ITEM(tags, i);
        PyObject *key = PyDict_GetItem(tag, S[F_KEY]);
        PyObject *value = PyDict_GetItem(tag, S[F_VALUE]);
        PyObject *item = PyDict_New();
        if (item == NULL) {
            goto failed;
        }
        PyList_SET_ITEM(cleaned, i, item);
        PyObject *new_key = PyUnicode_CheckExact(key) ? Py_NewRef(key) : PyObject_Str(key);
        if (new_key == NULL) {
            goto failed;
        }
        int result = PyDict_SetItem(item, S[F_KEY], new_key);
        Py_DECREF(new_key);
        if (result < 0) {
            goto failed;
        }
        PyObject *new_value = NULL;
        if (PyUnicode_CheckExact(value)) {
            new_value = Py_NewRef(value);
        } else if (PyDict_CheckExact(value)) {
            new_value = flat_object_json(value);
        }
        if (new_value == NULL && !PyErr_Occurred()) {
            new_value = PyObject_CallOneArg(clean_value, value);
        }
        if (new_value == NULL) {
            goto failed;
        }
        result = PyDict_SetItem(item, S[F_VALUE], new_value);
        Py_DECREF(new_value);
        if (result < 0) {
            goto failed;
        }
        for (int name = F_DISPLAY_KEY; name <= F_DISPLAY_VALUE; name++) {
            PyObject *shown = PyDict_GetItem(tag, S[name]);
            if (shown != NULL && PyDict_SetItem(item, S[name], shown) < 0) {
                goto failed;
            }
        }
    }
    return cleaned;
failed:
    Py_DECREF(cleaned);
    return NULL;
}

/* _clean_severity: int(value) clamped to 1..3, or 3 when int() refuses the value (TypeError,
 * ValueError; a message without one); for an int, a bool or a str. */
static PyObject *clean_severity(PyObject *value) {
    long long level = 3;
    PyObject *number = value == NULL ? NULL : PyNumber_Long(value);
    if (number != NULL) {
        int overflow;
        level = PyLong_AsLongLongAndOverflow(number, &overflow);
        Py_DECREF(number);
        if (overflow != 0) {
            level = overflow > 0 ? 3 : 1;
        } else if (level == -1 && PyErr_Occurred()) {
            return NULL;
        }
    } else if (value != NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError)) {
            return NULL;
        }
        PyErr_Clear();
    }
    return PyLong_FromLongLong(level < 1 ? 1 : level > 3 ? 3 : level);
}

static int put(PyObject *data, int name, PyObject *value) {
    if (value == NULL) {
        return -1;
    }
    int result = PyDict_SetItem(data, S[name], value);
    Py_DECREF(value);
    return result;
}

/* count_md5([plugin_id, event_id, status, time]) of the cleaned alert (the event id and the
 * time are new each time). */
static int alert_id(PyObject *data, hex32 out) {
    hex32 digests[4];
    int result = recurring_md5(PyDict_GetItem(data, S[F_PLUGIN_ID]), digests[0]);
    if (result == DONE) {
        result = count_md5(PyDict_GetItem(data, S[F_EVENT_ID]), digests[1]);
    }
    if (result == DONE) {
        result = recurring_md5(PyDict_GetItem(data, S[F_STATUS]), digests[2]);
    }
    if (result == DONE) {
        result = count_md5(PyDict_GetItem(data, S[F_TIME]), digests[3]);
    }
    return result == DONE ? digests_md5(digests, 4, out) : result;
}

/* _dedupe_values then count_md5 of them. */
static int dedupe_md5(PyObject *data, hex32 out) {
    int targetless =
        PySequence_Contains(TARGETLESS_TYPES, PyDict_GetItem(data, S[F_TARGET_TYPE]));
    if (targetless < 0) {
        return FAILED;
    }
    PyObject *keys = PyDict_GetItem(data, S[F_DEDUPE_KEYS]);
    PyObject *tags = PyDict_GetItem(data, S[F_TAGS]);
    Py_ssize_t count = PyList_GET_SIZE(keys);
    PyObject *values = PyList_New(count);
    if (values == NULL) {
        return FAILED;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *value = Py_None;
        if (targetless && PyUnicode_Compare(key, S[F_TARGET]) == 0) {
            value = Py_None;
        } else if (targetless && PyUnicode_Compare(key, S[F_TARGET_TYPE]) == 0) {
            value = S[F_EMPTY];
        } else if (PyUnicode_Tailmatch(key, S[F_TAGS_DOT], 0, PY_SSIZE_T_MAX, -1) == 1) {
            PyObject *name = PyUnicode_Substring(key, 5, PyUnicode_GET_LENGTH(key));
            if (name == NULL) {
                Py_DECREF(values);
                return FAILED;
            }
            for (Py_ssize_t t = 0; t < PyList_GET_SIZE(tags); t++) {
                PyObject *tag = PyList_GET_ITEM(tags, t);
                int equal = PyObject_RichCompareBool(PyDict_GetItem(tag, S[F_KEY]), name, Py_EQ);
                if (equal < 0) {
                    Py_DECREF(name);
                    Py_DECREF(values);
                    return FAILED;
                }
                if (equal) {
                    value = PyDict_GetItem(tag, S[F_VALUE]);
                    break;
                }
            }
            Py_DECREF(name);
        } else {
            PyObject *found = PyDict_GetItemWithError(data, key);
            if (found == NULL && PyErr_Occurred()) {
                Py_DECREF(values);
                return FAILED;
            }
            value = found == NULL ? Py_None : found;
        }
        PyList_SET_ITEM(values, i, Py_NewRef(value));
    }
    int result = recurring_list_md5(values, out);
    Py_DECREF(values);
    return result;
}

/* The fields clean_alert sets, in the order operators/alert.py's data.update() sets them. */
static int clean_fields(PyObject *data, PyObject *now, PyObject *clean_value) {
    PyObject *metric = PyDict_GetItem(data, S[F_METRIC]);
    PyObject *data_type = PyDict_GetItem(data, S[F_DATA_TYPE]);
    PyObject *status = PyDict_GetItem(data, S[F_STATUS]);
    PyObject *severity = PyDict_GetItem(data, S[F_SEVERITY]);
    PyObject *time = PyDict_GetItem(data, S[F_TIME]);
    if (data_type != NULL && !PyUnicode_CheckExact(data_type)) {
        return UNSUPPORTED;
    }
    if (severity != NULL && !PyLong_CheckExact(severity) && !PyUnicode_CheckExact(severity) &&
        !PyBool_Check(severity)) {
        return UNSUPPORTED;
    }
    PyObject *new_metric, *new_data_type, *new_status, *new_severity;
    if (metric != NULL && PyUnicode_CheckExact(metric)) {
        new_metric = PyList_New(1);
        if (new_metric != NULL) {
            PyList_SET_ITEM(new_metric, 0, Py_NewRef(metric));
        }
    } else if (metric != NULL && PyList_GET_SIZE(metric) > 0) {
        new_metric = Py_NewRef(metric);
    } else {
        new_metric = PyList_New(0);
    }
    new_data_type = folded_or(data_type, F_LOWER, DATA_TYPES, S[F_EVENT]);
    new_status = folded_or(status, F_UPPER, FINAL_STATUSES, S[F_ABNORMAL]);
    new_severity = clean_severity(severity);
    PyObject *dedupe_keys = clean_dedupe_keys(data);
    PyObject *tags = clean_tags(PyDict_GetItem(data, S[F_TAGS]), clean_value);
    PyObject *target_type = clean_target_type(PyDict_GetItem(data, S[F_TARGET_TYPE]));
    PyObject *target = PyDict_GetItem(data, S[F_TARGET]);
    PyObject *new_time = time != NULL ? time : PyDict_GetItem(data, S[F_BK_INGEST_TIME]);
    Py_XINCREF(target);
    Py_INCREF(new_time);
    /* put() takes each reference, failing on a NULL one, so the calls run to the end. */
    int failed = put(data, F_CREATE_TIME, PyNumber_Long(now)) < 0;
    failed |= put(data, F_TARGET_TYPE, target_type) < 0;
    failed |= put(data, F_TARGET, target == NULL ? Py_NewRef(Py_None) : target) < 0;
    failed |= put(data, F_METRIC, new_metric) < 0;
    failed |= put(data, F_DATA_TYPE, new_data_type) < 0;
    failed |= put(data, F_DEDUPE_KEYS, dedupe_keys) < 0;
    failed |= put(data, F_STATUS, new_status) < 0;
    failed |= put(data, F_SEVERITY, new_severity) < 0;
    failed |= put(data, F_TAGS, tags) < 0;
    failed |= put(data, F_TIME, new_time) < 0;
    return failed ? FAILED : DONE;
}

static PyObject *py_clean_alert(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "clean_alert(raw, now, clean_tag_value)");
        return NULL;
    }
    PyObject *raw = args[0], *now = args[1], *clean_value = args[2];
    if (!PyDict_CheckExact(raw)) {
        Py_RETURN_NONE;
    }
    PyObject *data = PyDict_New();
    if (data == NULL) {
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t at = 0;
    while (PyDict_Next(raw, &at, &key, &value)) {
        if (value != Py_None && PyDict_SetItem(data, key, value) < 0) {
            Py_DECREF(data);
            return NULL;
        }
    }
    int result = plainly_valid(data) ? clean_fields(data, now, clean_value) : UNSUPPORTED;
    hex32 digest;
    if (result == DONE) {
        result = alert_id(data, digest);
    }
    if (result == DONE) {
        result = put(data, F_ID, hex_str(digest)) < 0 ? FAILED : DONE;
    }
    if (result == DONE) {
        result = dedupe_md5(data, digest);
    }
    if (result == DONE) {
        result = put(data, F_DEDUPE_MD5, hex_str(digest)) < 0 ? FAILED : DONE;
    }
    if (result == DONE) {
        result = PyDict_SetItem(data, S[F_ACCESS_TIME], now) < 0 ? FAILED : DONE;
    }
    if (result == DONE) {
        return data;
    }
    Py_DECREF(data);
    if (result == FAILED) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- bounds ---------------------------------------------------------------------------- */

/* What the bounds scan counts, per byte: a digit (or #), a comma, an opening bracket. */
enum { DIGIT = 1, COMMA = 2, OPENING = 4 };
static unsigned char BYTE_KINDS[256];

static void init_byte_kinds(void) {
    for (int c = '0'; c <= '9'; c++) {
        BYTE_KINDS[c] = DIGIT;
    }
    BYTE_KINDS['#'] = DIGIT;
    BYTE_KINDS[','] = COMMA;
    BYTE_KINDS['['] = OPENING;
    BYTE_KINDS['{'] = OPENING;
}

static PyObject *py_may_exceed_bounds(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer raw;
    Py_ssize_t max_chars, max_items, max_depth, long_number;
    if (!PyArg_ParseTuple(args, "y*nnnn", &raw, &max_chars, &max_items, &max_depth,
                          &long_number)) {
        return NULL;
    }
    const unsigned char *bytes = raw.buf;
    Py_ssize_t size = raw.len, commas = 0, opened = 0, run = 0, longest = 0;
    if (size <= max_chars) {
        for (Py_ssize_t i = 0; i < size; i++) {
            unsigned char kind = BYTE_KINDS[bytes[i]];
            run = (kind & DIGIT) ? run + 1 : 0;
            longest = run > longest ? run : longest;
            commas += (kind & COMMA) != 0;
            opened += (kind & OPENING) != 0;
        }
    }
    int exceeds = size > max_chars || longest >= long_number ||
                  (size >= max_items && commas >= max_items) || opened > max_depth;
    PyBuffer_Release(&raw);
    return PyBool_FromLong(exceeds);
}

/* ---- Redis protocol ------------------------------------------------------------------------ */

/* The decimal digits of a number at out (at most 20 bytes); their count. */
static Py_ssize_t decimal(char *out, unsigned long long number) {
    char reversed[20];
    Py_ssize_t count = 0;
    do {
        reversed[count++] = (char)('0' + number % 10);
        number /= 10;
    } while (number != 0);
    for (Py_ssize_t i = 0; i < count; i++) {
        out[i] = reversed[count - 1 - i];
    }
    return count;
}

/* A protocol header ("*3\r\n", "$5\r\n") at out; its size. */
static Py_ssize_t header(char *out, char kind, Py_ssize_t size) {
    out[0] = kind;
    Py_ssize_t used = 1 + decimal(out + 1, (unsigned long long)size);
    out[used] = '\r';
    out[used + 1] = '\n';
    return used + 2;
}

/* An argument's bytes: a str's UTF-8, a bytes object's own, an int's decimal digits (in
 * digits, which must hold 21 bytes); 0, or -1 with an error set, or UNSUPPORTED for any other
 * type. */
static int argument(PyObject *item, const char **data, Py_ssize_t *size, char *digits) {
    if (PyBytes_CheckExact(item)) {
        *data = PyBytes_AS_STRING(item);
        *size = PyBytes_GET_SIZE(item);
        return 0;
    }
    if (PyUnicode_CheckExact(item)) {
        *data = PyUnicode_AsUTF8AndSize(item, size);
        return *data == NULL ? -1 : 0;
    }
    if (PyLong_CheckExact(item)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (overflow != 0) {
            return UNSUPPORTED;
        }
        int negative = number < 0;
        digits[0] = '-';
        *data = digits;
        *size = negative + decimal(digits + negative, negative ? 0ull - (unsigned long long)number
                                                               : (unsigned long long)number);
        return 0;
    }
    return UNSUPPORTED;
}

static PyObject *py_pack_command(PyObject *Py_UNUSED(module), PyObject *args) {
    if (!PyTuple_CheckExact(args)) {
        PyErr_SetString(PyExc_TypeError, "pack_command(args): args must be a tuple");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(args);
    char digits[21], head[24];
    const char *data;
    Py_ssize_t size, total = header(head, '*', count);
    for (Py_ssize_t i = 0; i < count; i++) {
        int result = argument(PyTuple_GET_ITEM(args, i), &data, &size, digits);
        if (result != 0) {
            if (result == UNSUPPORTED) {
                Py_RETURN_NONE;
            }
            return NULL;
        }
        total += header(head, '$', size) + size + 2;
    }
    PyObject *packed = PyBytes_FromStringAndSize(NULL, total);
    if (packed == NULL) {
        return NULL;
    }
    char *at = PyBytes_AS_STRING(packed);
    at += header(at, '*', count);
    for (Py_ssize_t i = 0; i < count; i++) {
        argument(PyTuple_GET_ITEM(args, i), &data, &size, digits);
        at += header(at, '$', size);
        memcpy(at, data, (size_t)size);
        at += size;
        *at++ = '\r';
        *at++ = '\n';
    }
    return packed;
}

/* ---- the push-once script's arguments ------------------------------------------------------ */

static int append_new(PyObject *list, PyObject *item) {
    if (item == NULL) {
        return -1;
    }
    int result = PyList_Append(list, item);
    Py_DECREF(item);
    return result;
}

/* One write (op, key, value, ttl, param, backend): its key onto keys, its spec and value onto
 * argv; the spec from specs by (op, backend, ttl, param), else from make_spec. */
static int flatten_write(PyObject *write, PyObject *keys, PyObject *argv, PyObject *specs,
                         PyObject *make_spec) {
    if (!PyTuple_Check(write) || PyTuple_GET_SIZE(write) != 6) {
        PyErr_SetString(PyExc_TypeError, "a write must be a Write");
        return -1;
    }
    PyObject *op = PyTuple_GET_ITEM(write, 0), *ttl = PyTuple_GET_ITEM(write, 3);
    PyObject *param = PyTuple_GET_ITEM(write, 4), *backend = PyTuple_GET_ITEM(write, 5);
    if (PyList_Append(keys, PyTuple_GET_ITEM(write, 1)) < 0) {
        return -1;
    }
    PyObject *shape = PyTuple_Pack(4, op, backend, ttl, param);
    if (shape == NULL) {
        return -1;
    }
    PyObject *spec = PyDict_GetItemWithError(specs, shape);
    Py_DECREF(shape);
    if (spec != NULL) {
        Py_INCREF(spec);
    } else if (PyErr_Occurred()) {
        return -1;
    } else {
        PyObject *call[4] = {op, ttl, param, backend};
        spec = PyObject_Vectorcall(make_spec, call, 4, NULL);
    }
    if (append_new(argv, spec) < 0) {
        return -1;
    }
    return PyList_Append(argv, PyTuple_GET_ITEM(write, 2));
}

static PyObject *py_flatten_pushes(PyObject *Py_UNUSED(module), PyObject *const *args,
                                   Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "flatten_pushes(pushes: list, specs: dict, make_spec)");
        return NULL;
    }
    PyObject *pushes = args[0], *specs = args[1], *make_spec = args[2];
    PyObject *keys = PyList_New(0), *argv = PyList_New(0);
    if (keys == NULL || argv == NULL) {
        goto failed;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pushes); i++) {
        PyObject *push = PyList_GET_ITEM(pushes, i);
        if (!PyTuple_Check(push) || PyTuple_GET_SIZE(push) != 2 ||
            !PyTuple_Check(PyTuple_GET_ITEM(push, 1))) {
            PyErr_SetString(PyExc_TypeError, "a push must be a Push");
            goto failed;
        }
        PyObject *writes = PyTuple_GET_ITEM(push, 1);
        Py_ssize_t count = PyTuple_GET_SIZE(writes);
        if (append_new(argv, PyLong_FromSsize_t(1 + count)) < 0 ||
            flatten_write(PyTuple_GET_ITEM(push, 0), keys, argv, specs, make_spec) < 0) {
            goto failed;
        }
        for (Py_ssize_t w = 0; w < count; w++) {
            if (flatten_write(PyTuple_GET_ITEM(writes, w), keys, argv, specs, make_spec) < 0) {
                goto failed;
            }
        }
    }
    return Py_BuildValue("(NN)", keys, argv);
failed:
    Py_XDECREF(keys);
    Py_XDECREF(argv);
    return NULL;
}

/* The bytes of the values of a list of state.idempotent.Push (a str value counts its characters):
 * what a script call carries, besides its keys and specs. */
static PyObject *py_values_size(PyObject *Py_UNUSED(module), PyObject *pushes) {
    if (!PyList_Check(pushes)) {
        PyErr_SetString(PyExc_TypeError, "values_size(pushes: list)");
        return NULL;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pushes); i++) {
        PyObject *push = PyList_GET_ITEM(pushes, i);
        if (!PyTuple_Check(push) || PyTuple_GET_SIZE(push) != 2 ||
            !PyTuple_Check(PyTuple_GET_ITEM(push, 1))) {
            PyErr_SetString(PyExc_TypeError, "a push must be a Push");
            return NULL;
        }
        PyObject *writes = PyTuple_GET_ITEM(push, 1);
        for (Py_ssize_t w = -1; w < PyTuple_GET_SIZE(writes); w++) {
            PyObject *write = w < 0 ? PyTuple_GET_ITEM(push, 0) : PyTuple_GET_ITEM(writes, w);
            if (!PyTuple_Check(write) || PyTuple_GET_SIZE(write) != 6) {
                PyErr_SetString(PyExc_TypeError, "a write must be a Write");
                return NULL;
            }
            PyObject *value = PyTuple_GET_ITEM(write, 2);
            if (PyBytes_Check(value)) {
                size += PyBytes_GET_SIZE(value);
            } else if (PyUnicode_Check(value)) {
                size += PyUnicode_GET_LENGTH(value);
            }
        }
    }
    return PyLong_FromSsize_t(size);
}

/* A new tuple of `size` items still to be set, of `type`: tuple or a subclass (a named tuple). */
static PyObject *new_tuple(PyTypeObject *type, Py_ssize_t size) {
    return type == &PyTuple_Type ? PyTuple_New(size) : type->tp_alloc(type, size);
}

/* A copy of the tuple `shape`, of its type, with item `at` replaced by `value`. */
static PyObject *tuple_with(PyObject *shape, Py_ssize_t at, PyObject *value) {
    Py_ssize_t size = PyTuple_GET_SIZE(shape);
    PyObject *copy = new_tuple(Py_TYPE(shape), size);
    if (copy == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *item = i == at ? value : PyTuple_GET_ITEM(shape, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(copy, i, item);
    }
    return copy;
}

static PyObject *py_stamp_push(PyObject *Py_UNUSED(module), PyObject *const *args,
                               Py_ssize_t nargs) {
    if (nargs != 6 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) < 3 ||
        !PyTuple_Check(args[3]) || !PyTuple_Check(args[4]) || !PyType_Check(args[5]) ||
        !PyType_IsSubtype((PyTypeObject *)args[5], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError,
                        "stamp_push(marker: Write, key, value, lists: tuple, signals: tuple, Push)");
        return NULL;
    }
    PyObject *lists = args[3], *signals = args[4];
    Py_ssize_t count = PyTuple_GET_SIZE(lists), signalled = PyTuple_GET_SIZE(signals);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyTuple_Check(PyTuple_GET_ITEM(lists, i)) ||
            PyTuple_GET_SIZE(PyTuple_GET_ITEM(lists, i)) < 3) {
            PyErr_SetString(PyExc_TypeError, "a list write must be a Write");
            return NULL;
        }
    }
    PyObject *writes = PyTuple_New(count + signalled);
    if (writes == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *write = tuple_with(PyTuple_GET_ITEM(lists, i), 2, args[2]);
        if (write == NULL) {
            Py_DECREF(writes);
            return NULL;
        }
        PyTuple_SET_ITEM(writes, i, write);
    }
    for (Py_ssize_t i = 0; i < signalled; i++) {
        Py_INCREF(PyTuple_GET_ITEM(signals, i));
        PyTuple_SET_ITEM(writes, count + i, PyTuple_GET_ITEM(signals, i));
    }
    PyObject *marker = tuple_with(args[0], 1, args[1]);
    if (marker == NULL) {
        Py_DECREF(writes);
        return NULL;
    }
    PyObject *push = new_tuple((PyTypeObject *)args[5], 2);
    if (push == NULL) {
        Py_DECREF(marker);
        Py_DECREF(writes);
        return NULL;
    }
    PyTuple_SET_ITEM(push, 0, marker);
    PyTuple_SET_ITEM(push, 1, writes);
    return push;
}

static PyObject *py_exact_bytes(PyObject *Py_UNUSED(module), PyObject *value) {
    if (!PyBytes_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "exact_bytes(value: bytes)");
        return NULL;
    }
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
}

/* ---- an alert's route key (operators/routing.py) ------------------------------------------- */

/* Whether tags is a list of dicts each with a str "key" and a "value" (as the cleaning leaves
 * an alert's tags, and as a dict of them can be built from). */
static int plain_tags(PyObject *tags) {
    if (!PyList_CheckExact(tags)) {
        return 0;
    }
    Py_ssize_t count = PyList_GET_SIZE(tags);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(tags, i);
        PyObject *key = PyDict_CheckExact(item) ? PyDict_GetItem(item, S[F_KEY]) : NULL;
        if (key == NULL || !PyUnicode_CheckExact(key) ||
            PyDict_GetItem(item, S[F_VALUE]) == NULL) {
            return 0;
        }
    }
    return 1;
}

/* A value the conditions read, as operators.routing.alert_lookup gives it: the event's field
 * `field` (unless None) when it has one, else the value of the last tag named `tag` (as a dict
 * built from the tags keeps it), else `missing`; borrowed, NULL with an error set when the
 * lookup failed. */
static PyObject *route_value(PyObject *event, PyObject *tags, PyObject *field, PyObject *tag,
                             PyObject *missing) {
    if (field != Py_None) {
        PyObject *value = PyDict_GetItemWithError(event, field);
        if (value != NULL || PyErr_Occurred()) {
            return value;
        }
    }
    PyObject *found = missing;
    Py_ssize_t count = PyList_GET_SIZE(tags);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(tags, i);
        if (PyUnicode_Compare(PyDict_GetItem(item, S[F_KEY]), tag) == 0) {
            found = PyDict_GetItem(item, S[F_VALUE]);
        }
    }
    return found;
}

/* Whether equal values of value's type behave alike in every condition: str, int, bool, None
 * and `missing` (1 and True are told apart by their types in the key; not floats: 0.0 == -0.0). */
static int exact_route_value(PyObject *value, PyObject *missing) {
    return PyUnicode_CheckExact(value) || PyLong_CheckExact(value) || PyBool_Check(value) ||
           value == Py_None || value == missing;
}

static PyObject *py_route_key(PyObject *Py_UNUSED(module), PyObject *const *args,
                              Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "route_key(event, reads: tuple, missing)");
        return NULL;
    }
    PyObject *event = args[0], *reads = args[1], *missing = args[2];
    Py_ssize_t count = PyTuple_GET_SIZE(reads);
    PyObject *biz = PyDict_CheckExact(event) ? PyDict_GetItem(event, S[F_BK_BIZ_ID]) : NULL;
    PyObject *tags = biz != NULL ? PyDict_GetItem(event, S[F_TAGS]) : NULL;
    if (tags == NULL || !plain_tags(tags) ||
        !(PyUnicode_CheckExact(biz) || PyLong_CheckExact(biz))) {
        Py_RETURN_NONE;
    }
    PyObject *key = PyTuple_New(1 + 2 * count);
    if (key == NULL) {
        return NULL;
    }
    PyTuple_SET_ITEM(key, 0, Py_NewRef(biz));
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *read = PyTuple_GET_ITEM(reads, i);
        if (!PyTuple_Check(read) || PyTuple_GET_SIZE(read) != 2 ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(read, 1))) {
            Py_DECREF(key);
            PyErr_SetString(PyExc_TypeError, "a read must be a (field or None, tag: str) tuple");
            return NULL;
        }
        PyObject *value = route_value(event, tags, PyTuple_GET_ITEM(read, 0),
                                      PyTuple_GET_ITEM(read, 1), missing);
        if (value == NULL || !exact_route_value(value, missing)) {
            Py_DECREF(key);
            if (value == NULL) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        PyTuple_SET_ITEM(key, 1 + i, Py_NewRef(value));
        PyTuple_SET_ITEM(key, 1 + count + i, Py_NewRef((PyObject *)Py_TYPE(value)));
    }
    return key;
}

static PyMethodDef methods[] = {
    {"count_md5", py_count_md5, METH_O,
     "count_md5(value) -> str | None: bkmonitor's count_md5 of a value made of str, int, "
     "float, bool, None, list, tuple and dict; None for any other type."},
    {"clean_alert", (PyCFunction)(void (*)(void))py_clean_alert, METH_FASTCALL,
     "clean_alert(raw, now, clean_tag_value) -> dict | None: operators.alert.clean_alert for "
     "a message of plain JSON types; None for any other message."},
    {"may_exceed_bounds", py_may_exceed_bounds, METH_VARARGS,
     "may_exceed_bounds(raw, max_chars, max_items, max_depth, long_number) -> bool: whether "
     "the bytes of a JSON message may hold more than max_chars bytes, max_items commas (when "
     "at least that long), more than max_depth opening brackets, or long_number digits (or #) "
     "in a row; False proves none of its values exceeds the bounds."},
    {"pack_command", py_pack_command, METH_O,
     "pack_command(args) -> bytes | None: the Redis protocol's array of the tuple args, each a "
     "str (UTF-8), bytes or an int in 64 bits; None when one is of another type."},
    {"flatten_pushes", (PyCFunction)(void (*)(void))py_flatten_pushes, METH_FASTCALL,
     "flatten_pushes(pushes, specs, make_spec) -> (keys, argv): the push-once script's KEYS "
     "and ARGV for a list of state.idempotent.Push (see OncePusher.push)."},
    {"values_size", py_values_size, METH_O,
     "values_size(pushes) -> int: the bytes of the values of a list of state.idempotent.Push "
     "(a str value counts its characters)."},
    {"exact_bytes", py_exact_bytes, METH_O,
     "exact_bytes(value: bytes) -> bytes: a copy of value in a new object of its own size "
     "(the buffer of an orjson.dumps result stays at 8 KiB whatever its length)."},
    {"stamp_push", (PyCFunction)(void (*)(void))py_stamp_push, METH_FASTCALL,
     "stamp_push(marker, key, value, lists, signals, push_type) -> Push: push_type(marker with "
     "key as its key, (each of lists with value as its value, *signals)), named tuples alike."},
    {"route_key", (PyCFunction)(void (*)(void))py_route_key, METH_FASTCALL,
     "route_key(event, reads, missing) -> tuple | None: (bk_biz_id, *values, *their types) "
     "of the values an alert's conditions read, each read a (field or None, tag name); None "
     "when bk_biz_id is not a str or int, a value not a str, int, bool, None or missing, or "
     "the event not a dict with a list of tags of str keys."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "operators._native",
                                        "C twins of operators.md5 and operators.alert.", -1,
                                        methods};

static PyObject *string_set(const char *const *texts, int count, int frozen) {
    PyObject *items = PyTuple_New(count);
    if (items == NULL) {
        return NULL;
    }
    for (int i = 0; i < count; i++) {
        PyObject *text = PyUnicode_InternFromString(texts[i]);
        if (text == NULL) {
            Py_DECREF(items);
            return NULL;
        }
        PyTuple_SET_ITEM(items, i, text);
    }
    if (!frozen) {
        return items;
    }
    PyObject *set = PyFrozenSet_New(items);
    Py_DECREF(items);
    return set;
}

PyMODINIT_FUNC PyInit__native(void) {
    static const char *const builtin[] = {"HOST", "TOPO", "SERVICE"};
    static const char *const final[] = {"RECOVERED", "CLOSED"};
    static const char *const data_types[] = {"time_series", "log"};
    static const char *const targetless[] = {"K8S-POD", "K8S-NODE", "K8S-SERVICE",
                                             "K8S-WORKLOAD", "APM-SERVICE"};
    static const char *const with_strategy[] = {"strategy_id", "target_type", "target",
                                                "bk_biz_id"};
    static const char *const without_strategy[] = {"alert_name", "target_type", "target",
                                                   "bk_biz_id"};
    for (int i = 0; i < F_COUNT; i++) {
        S[i] = PyUnicode_InternFromString(FIELD_NAMES[i]);
        if (S[i] == NULL) {
            return NULL;
        }
    }
    BUILTIN_TARGET_TYPES = string_set(builtin, 3, 1);
    FINAL_STATUSES = string_set(final, 2, 1);
    DATA_TYPES = string_set(data_types, 2, 1);
    TARGETLESS_TYPES = string_set(targetless, 5, 1);
    DEDUPE_WITH_STRATEGY = string_set(with_strategy, 4, 0);
    DEDUPE_WITHOUT_STRATEGY = string_set(without_strategy, 4, 0);
    init_byte_kinds();
    text_digests = PyDict_New();
    list_digests = PyDict_New();
    if (BUILTIN_TARGET_TYPES == NULL || FINAL_STATUSES == NULL || DATA_TYPES == NULL ||
        TARGETLESS_TYPES == NULL || DEDUPE_WITH_STRATEGY == NULL ||
        DEDUPE_WITHOUT_STRATEGY == NULL || text_digests == NULL || list_digests == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
