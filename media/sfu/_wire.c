/* The SFU's per-subscriber forwarding step in C: rewrite, write, protect, send, remember.
 *
 * A packet from a publisher is forwarded once per subscriber, so this step is most of the SFU's
 * cost per forwarded packet. In Python it cost about 8 µs in a tight loop and 25 µs in place
 * (every `sendto` wakes a subscriber, and the interpreter runs from a cold cache); here it is one
 * call. The Python layers above it decide WHETHER to forward (media.sfu.subscription: source,
 * keyframe gating, payload type); this decides nothing but the numbers. docs/benchmarks.md "SFU".
 *
 * One `Wire` per subscription (one outbound RTP stream, one SSRC for its life):
 *
 *   Wire(history_size, first_sequence_number, first_timestamp)
 *   .connect(ssrc, mid_element, abs_send_time_id, audio_level_id, session, context, protect, max_length,
 *            counters)    once the sender is started and DTLS connected (media.sfu.wire.connect)
 *   .aim(socket, host, port)    where packets go: the nominated ICE pair (socket.fileno() at each send;
 *                               None: nowhere)
 *   .forward(payload_type, marker, sequence_number, timestamp, payload, ntp, audio_level, now, clock_rate)
 *
 * Rewriting (the `rewrite` method alone, for tests). The subscriber sees one stream whatever the
 * sources in turn (a recycled transceiver, a publisher that reconnected): sequence numbers that
 * continue by +1 and increasing timestamps. Each source gets offsets when its first packet is
 * forwarded: out_seq = in_seq + seq_offset (mod 2^16), continuing after the highest number sent,
 * so gaps and reordering within a source are kept (NACKs stay meaningful); out_ts = in_ts +
 * ts_offset (mod 2^32), following the last timestamp sent by the wall-clock gap since the last
 * packet (`now`, in `clock_rate` ticks; at least 1). A packet older than the current source's
 * "floor" is dropped (its number would collide with the previous source's); the floor starts at the
 * source's first packet and follows its newest at FLOOR_LAG packets, so a long stream is never
 * mistaken for an old one (a fixed floor once dropped packets 32768-65535 of every source: three
 * minutes of frozen video). JUMP_DROPS packets in a row below the floor mean the source jumped:
 * it is mapped afresh. `switch_source()` makes the next packet start a new source.
 *
 * Writing (`write`, byte for byte what aiortc's `RtpPacket.serialize` writes; tests/unit/
 * test_sfu_hooks.py compares them): RFC 3550 §5.1 header, then, when any element is present, the
 * RFC 8285 one-byte extension header 0xBEDE, its length in 32-bit words, the elements (mid,
 * abs-send-time, RFC 6464 audio level, in aiortc's order) padded with zeros to a word; the payload.
 *
 * Protecting: libsrtp's `srtp_protect` on the DTLS transport's outbound context, both addresses
 * given by pylibsrtp's cffi binding as integers; the `Session` object is held so the context lives.
 *
 * Remembering: the plaintext of the last `history_size` packets, by outbound sequence number, for
 * NACKs (`history(sequence_number)`), and the counters aiortc's own send path keeps: `counters` is
 * (dtls_state, tx_bytes_key, tx_packets_key, sender_state, ntp_key, rtp_timestamp_key, octets_key,
 * packets_key): the `vars()` of the DTLS transport and of the sender and the names of their
 * attributes (getStats() and the RTCP sender reports read them).
 *
 * `forward` returns True when the packet was sent; False when it was dropped by the rewriter, the
 * wire is not connected or aimed, its socket is closed, the packet is too long or SRTP refused
 * it. `dropped` counts packets the kernel refused after protection (a full socket buffer: like a
 * packet lost on the way; the subscriber's NACK gets it from the history).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define BUFFER_SIZE 2048
#define MAX_MID_ELEMENT 17 /* one id/length byte and a mid of up to 16 bytes */
#define SEQ_MASK 0xFFFFu
#define SEQ_HALF 0x8000u
#define FLOOR_LAG 0x4000u /* how far behind the newest packet of a source the floor is kept */
#define JUMP_DROPS 64     /* packets in a row below the floor that mean the source jumped */

typedef int (*srtp_protect_fn)(void *context, void *packet, int *length);

enum { DTLS_STATE, TX_BYTES, TX_PACKETS, SENDER_STATE, NTP, RTP_TIMESTAMP, OCTETS, PACKETS, COUNTERS };

typedef struct {
    PyObject_HEAD
    /* rewriting */
    uint32_t highest_seq, highest_ts, seq_offset, ts_offset, floor;
    int started, mapped, below_floor, has_last_sent;
    double last_sent_at;
    /* remembering */
    Py_ssize_t history_size;
    long *history_numbers;
    PyObject **history_packets;
    PyObject *counters[COUNTERS];
    unsigned long long packets_sent, dropped;
    /* writing and protecting (after connect) */
    int connected;
    uint32_t ssrc;
    unsigned char mid_element[MAX_MID_ELEMENT];
    Py_ssize_t mid_element_length;
    int abs_send_time_id, audio_level_id;
    PyObject *session;
    void *srtp_context;
    srtp_protect_fn protect;
    Py_ssize_t max_length, last_length;
    /* sending */
    PyObject *socket;
    struct sockaddr_storage address;
    socklen_t address_length;
    unsigned char buffer[BUFFER_SIZE];
} Wire;

static PyObject *fileno_name;

/* --- rewriting ------------------------------------------------------------------------------ */

static void map_source(Wire *self, uint32_t seq, uint32_t ts, long long ts_gap) {
    self->seq_offset = (self->highest_seq + 1 - seq) & SEQ_MASK;
    uint32_t ts_step = self->started ? (ts_gap > 1 ? (uint32_t)(unsigned long long)ts_gap : 1) : 1;
    self->ts_offset = self->highest_ts + ts_step - ts;
    self->mapped = 1;
    self->floor = seq;
    self->below_floor = 0;
}

/* 1 and the outbound numbers, or 0: drop the packet. */
static int rewrite(Wire *self, uint32_t seq, uint32_t ts, long long ts_gap, uint32_t *out_seq, uint32_t *out_ts) {
    if (!self->mapped)
        map_source(self, seq, ts, ts_gap);
    uint32_t ahead = (seq - self->floor) & SEQ_MASK;
    if (ahead >= SEQ_HALF) { /* older than the floor */
        if (++self->below_floor < JUMP_DROPS)
            return 0;
        map_source(self, seq, ts, ts_gap);
    } else if (ahead > FLOOR_LAG) {
        self->floor = (seq - FLOOR_LAG) & SEQ_MASK;
    }
    self->below_floor = 0;
    *out_seq = (seq + self->seq_offset) & SEQ_MASK;
    *out_ts = ts + self->ts_offset;
    uint32_t step = (*out_seq - self->highest_seq) & SEQ_MASK;
    if (!self->started || (step > 0 && step < SEQ_HALF)) {
        self->highest_seq = *out_seq;
        self->highest_ts = *out_ts;
    }
    self->started = 1;
    return 1;
}

/* --- life ----------------------------------------------------------------------------------- */

static int Wire_init(Wire *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"history_size", "first_sequence_number", "first_timestamp", NULL};
    Py_ssize_t history_size;
    unsigned long first_seq, first_ts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nkk", keywords, &history_size, &first_seq, &first_ts))
        return -1;
    if (history_size <= 0 || history_size > 1 << 16 || first_seq > SEQ_MASK || first_ts > 0xFFFFFFFFUL) {
        PyErr_SetString(PyExc_ValueError, "Wire: history_size must be 1..65536, the first numbers 16 and 32 bits");
        return -1;
    }
    if (self->history_packets != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Wire: already initialised");
        return -1;
    }
    self->history_numbers = PyMem_Calloc((size_t)history_size, sizeof(long));
    self->history_packets = PyMem_Calloc((size_t)history_size, sizeof(PyObject *));
    if (self->history_numbers == NULL || self->history_packets == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < history_size; i++)
        self->history_numbers[i] = -1;
    self->history_size = history_size;
    self->highest_seq = (uint32_t)(first_seq - 1) & SEQ_MASK;
    self->highest_ts = (uint32_t)first_ts - 1;
    return 0;
}

static void Wire_dealloc(Wire *self) {
    if (self->history_packets != NULL) {
        for (Py_ssize_t i = 0; i < self->history_size; i++)
            Py_XDECREF(self->history_packets[i]);
        PyMem_Free(self->history_packets);
    }
    PyMem_Free(self->history_numbers);
    for (int i = 0; i < COUNTERS; i++)
        Py_XDECREF(self->counters[i]);
    Py_XDECREF(self->session);
    Py_XDECREF(self->socket);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Wire_connect(Wire *self, PyObject *args) {
    unsigned long ssrc;
    Py_buffer mid;
    int abs_send_time_id, audio_level_id;
    PyObject *session, *counters;
    unsigned long long context, protect;
    Py_ssize_t max_length;
    if (self->history_packets == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Wire: not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "ky*iiOKKnO!", &ssrc, &mid, &abs_send_time_id, &audio_level_id, &session, &context,
                          &protect, &max_length, &PyTuple_Type, &counters))
        return NULL;
    int ok = mid.len <= MAX_MID_ELEMENT && abs_send_time_id >= 0 && abs_send_time_id <= 14 && audio_level_id >= 0 &&
             audio_level_id <= 14 && ssrc <= 0xFFFFFFFFUL && context && protect && max_length > 0 &&
             max_length <= BUFFER_SIZE - 256 && PyTuple_GET_SIZE(counters) == COUNTERS &&
             PyDict_Check(PyTuple_GET_ITEM(counters, DTLS_STATE)) && PyDict_Check(PyTuple_GET_ITEM(counters, SENDER_STATE));
    if (ok) {
        memcpy(self->mid_element, mid.buf, (size_t)mid.len);
        self->mid_element_length = mid.len;
    }
    PyBuffer_Release(&mid);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "Wire.connect: an argument is out of range");
        return NULL;
    }
    for (int i = 0; i < COUNTERS; i++) {
        PyObject *item = PyTuple_GET_ITEM(counters, i);
        Py_INCREF(item);
        Py_XSETREF(self->counters[i], item);
    }
    self->ssrc = (uint32_t)ssrc;
    self->abs_send_time_id = abs_send_time_id;
    self->audio_level_id = audio_level_id;
    Py_INCREF(session);
    Py_XSETREF(self->session, session);
    self->srtp_context = (void *)(uintptr_t)context;
    self->protect = (srtp_protect_fn)(uintptr_t)protect;
    self->max_length = max_length;
    self->connected = 1;
    Py_RETURN_NONE;
}

static PyObject *Wire_aim(Wire *self, PyObject *args) {
    PyObject *socket;
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "Osi", &socket, &host, &port))
        return NULL;
    if (socket == Py_None) { /* no socket to send from: forward nothing until aimed again */
        Py_CLEAR(self->socket);
        self->address_length = 0;
        Py_RETURN_NONE;
    }
    if (port <= 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return NULL;
    }
    struct sockaddr_storage address;
    socklen_t address_length;
    memset(&address, 0, sizeof address);
    if (strchr(host, ':') == NULL) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &v4->sin_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "not an IPv4 address: %s", host);
            return NULL;
        }
        address_length = sizeof *v4;
    } else {
        char plain_host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
        strncpy(plain_host, host, sizeof plain_host - 1);
        plain_host[sizeof plain_host - 1] = 0;
        char *scope = strchr(plain_host, '%');
        if (scope != NULL) {
            *scope++ = 0;
            v6->sin6_scope_id = if_nametoindex(scope);
        }
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, plain_host, &v6->sin6_addr) != 1) {
            PyErr_Format(PyExc_ValueError, "not an IPv6 address: %s", host);
            return NULL;
        }
        address_length = sizeof *v6;
    }
    Py_INCREF(socket);
    Py_XSETREF(self->socket, socket);
    self->address = address;
    self->address_length = address_length;
    Py_RETURN_NONE;
}

/* --- writing -------------------------------------------------------------------------------- */

/* Serializes into self->buffer: the length, or -1 with ValueError (too long) or another error set. */
static Py_ssize_t write_packet(Wire *self, long payload_type, long marker, uint32_t seq, uint32_t ts, PyObject *payload,
                               uint32_t abs_send_time, PyObject *audio_level) {
    if (!self->connected) {
        PyErr_SetString(PyExc_RuntimeError, "Wire: not connected");
        return -1;
    }
    if (!PyBytes_Check(payload)) {
        PyErr_SetString(PyExc_TypeError, "payload must be bytes");
        return -1;
    }
    int has_level = 0;
    long vad = 0, level = 0;
    if (audio_level != Py_None && self->audio_level_id) {
        if (!PyTuple_Check(audio_level) || PyTuple_GET_SIZE(audio_level) != 2) {
            PyErr_SetString(PyExc_TypeError, "audio_level must be None or (voice_activity, level)");
            return -1;
        }
        vad = PyObject_IsTrue(PyTuple_GET_ITEM(audio_level, 0));
        level = PyLong_AsLong(PyTuple_GET_ITEM(audio_level, 1));
        if (vad < 0 || (level == -1 && PyErr_Occurred()))
            return -1;
        has_level = 1;
    }
    Py_ssize_t elements = self->mid_element_length + (self->abs_send_time_id ? 4 : 0) + (has_level ? 2 : 0);
    Py_ssize_t padded = (elements + 3) & ~(Py_ssize_t)3;
    Py_ssize_t payload_length = PyBytes_GET_SIZE(payload);
    if (12 + (elements ? 4 + padded : 0) + payload_length > self->max_length) {
        PyErr_SetString(PyExc_ValueError, "packet is too long");
        return -1;
    }
    unsigned char *out = self->buffer;
    out[0] = elements ? 0x90 : 0x80;
    out[1] = (unsigned char)(((marker & 1) << 7) | (payload_type & 0x7F));
    out[2] = (unsigned char)(seq >> 8);
    out[3] = (unsigned char)seq;
    out[4] = (unsigned char)(ts >> 24);
    out[5] = (unsigned char)(ts >> 16);
    out[6] = (unsigned char)(ts >> 8);
    out[7] = (unsigned char)ts;
    out[8] = (unsigned char)(self->ssrc >> 24);
    out[9] = (unsigned char)(self->ssrc >> 16);
    out[10] = (unsigned char)(self->ssrc >> 8);
    out[11] = (unsigned char)self->ssrc;
    Py_ssize_t n = 12;
    if (elements) {
        out[12] = 0xBE;
        out[13] = 0xDE;
        out[14] = (unsigned char)((padded >> 2) >> 8);
        out[15] = (unsigned char)(padded >> 2);
        n = 16;
        memcpy(out + n, self->mid_element, (size_t)self->mid_element_length);
        n += self->mid_element_length;
        if (self->abs_send_time_id) {
            out[n] = (unsigned char)((self->abs_send_time_id << 4) | 2);
            out[n + 1] = (unsigned char)(abs_send_time >> 16);
            out[n + 2] = (unsigned char)(abs_send_time >> 8);
            out[n + 3] = (unsigned char)abs_send_time;
            n += 4;
        }
        if (has_level) {
            out[n] = (unsigned char)(self->audio_level_id << 4);
            out[n + 1] = (unsigned char)((vad ? 0x80 : 0) | (level & 0x7F));
            n += 2;
        }
        while (n < 16 + padded)
            out[n++] = 0;
    }
    memcpy(out + n, PyBytes_AS_STRING(payload), (size_t)payload_length);
    return n + payload_length;
}

/* --- remembering ---------------------------------------------------------------------------- */

static void remember(Wire *self, uint32_t seq, PyObject *packet) {
    Py_ssize_t index = (Py_ssize_t)(seq % (uint32_t)self->history_size);
    self->history_numbers[index] = (long)seq;
    Py_INCREF(packet);
    Py_XSETREF(self->history_packets[index], packet);
}

/* dict[key] += amount (an int); -1 with an exception set on failure. */
static int add_to(PyObject *dict, PyObject *key, Py_ssize_t amount) {
    PyObject *value = PyDict_GetItemWithError(dict, key);
    if (value == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    PyObject *step = PyLong_FromSsize_t(amount);
    if (step == NULL)
        return -1;
    PyObject *sum = PyNumber_Add(value, step);
    Py_DECREF(step);
    if (sum == NULL)
        return -1;
    int result = PyDict_SetItem(dict, key, sum);
    Py_DECREF(sum);
    return result;
}

static int count_sent(Wire *self, PyObject *ntp, uint32_t ts, Py_ssize_t payload_length, Py_ssize_t protected_length) {
    PyObject **c = self->counters;
    PyObject *rtp_timestamp = PyLong_FromUnsignedLong(ts);
    if (rtp_timestamp == NULL)
        return -1;
    int failed = add_to(c[DTLS_STATE], c[TX_BYTES], protected_length) < 0 ||
                 add_to(c[DTLS_STATE], c[TX_PACKETS], 1) < 0 || PyDict_SetItem(c[SENDER_STATE], c[NTP], ntp) < 0 ||
                 PyDict_SetItem(c[SENDER_STATE], c[RTP_TIMESTAMP], rtp_timestamp) < 0 ||
                 add_to(c[SENDER_STATE], c[OCTETS], payload_length) < 0 || add_to(c[SENDER_STATE], c[PACKETS], 1) < 0;
    Py_DECREF(rtp_timestamp);
    return failed ? -1 : 0;
}

/* --- the forwarding step -------------------------------------------------------------------- */

/* The socket's file descriptor; -1 when closed or not aimed (no exception); -2 on error. */
static int socket_fd(Wire *self) {
    if (self->socket == NULL || self->address_length == 0)
        return -1;
    PyObject *fileno = PyObject_CallMethodNoArgs(self->socket, fileno_name);
    if (fileno == NULL)
        return -2;
    long fd = PyLong_AsLong(fileno);
    Py_DECREF(fileno);
    if (fd == -1 && PyErr_Occurred())
        return -2;
    return fd < 0 ? -1 : (int)fd;
}

static int as_u32(PyObject *value, uint32_t *out) {
    unsigned long v = PyLong_AsUnsignedLongMask(value);
    if (v == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static PyObject *Wire_forward(Wire *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "forward(payload_type, marker, sequence_number, timestamp, payload, ntp, "
                                         "audio_level, now, clock_rate)");
        return NULL;
    }
    long payload_type = PyLong_AsLong(args[0]);
    long marker = PyLong_AsLong(args[1]);
    uint32_t seq, ts;
    if (as_u32(args[2], &seq) < 0 || as_u32(args[3], &ts) < 0)
        return NULL;
    unsigned long long ntp = PyLong_AsUnsignedLongLongMask(args[5]);
    double now = PyFloat_AsDouble(args[7]);
    long clock_rate = PyLong_AsLong(args[8]);
    if (PyErr_Occurred())
        return NULL;
    if (!self->connected)
        Py_RETURN_FALSE;
    int fd = socket_fd(self);
    if (fd == -2)
        return NULL;
    if (fd < 0)
        Py_RETURN_FALSE;
    long long gap = 0;
    if (!self->mapped && self->has_last_sent)
        gap = (long long)nearbyint((now - self->last_sent_at) * (double)clock_rate);
    uint32_t out_seq, out_ts;
    if (!rewrite(self, seq & SEQ_MASK, ts, gap, &out_seq, &out_ts))
        Py_RETURN_FALSE;
    Py_ssize_t length = write_packet(self, payload_type, marker, out_seq, out_ts, args[4],
                                     (uint32_t)(ntp >> 14) & 0xFFFFFFu, args[6]);
    if (length < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return NULL;
        PyErr_Clear(); /* too long: not sent, as `Session.protect` refuses it */
        Py_RETURN_FALSE;
    }
    PyObject *plain = PyBytes_FromStringAndSize((const char *)self->buffer, length);
    if (plain == NULL)
        return NULL;
    int protected_length = (int)length;
    if (self->protect(self->srtp_context, self->buffer, &protected_length) != 0) {
        Py_DECREF(plain);
        Py_RETURN_FALSE;
    }
    self->last_length = protected_length;
    if (sendto(fd, self->buffer, (size_t)protected_length, 0, (struct sockaddr *)&self->address,
               self->address_length) < 0)
        self->dropped++;
    remember(self, out_seq, plain);
    Py_DECREF(plain);
    self->packets_sent++;
    self->last_sent_at = now;
    self->has_last_sent = 1;
    if (count_sent(self, args[5], out_ts, PyBytes_GET_SIZE(args[4]), protected_length) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

/* --- the parts alone ------------------------------------------------------------------------ */

static PyObject *Wire_rewrite(Wire *self, PyObject *args) {
    unsigned long seq, ts;
    long long gap;
    if (!PyArg_ParseTuple(args, "kkL", &seq, &ts, &gap))
        return NULL;
    uint32_t out_seq, out_ts;
    if (!rewrite(self, (uint32_t)seq & SEQ_MASK, (uint32_t)ts, gap, &out_seq, &out_ts))
        Py_RETURN_NONE;
    return Py_BuildValue("(kk)", (unsigned long)out_seq, (unsigned long)out_ts);
}

static PyObject *Wire_switch_source(Wire *self, PyObject *Py_UNUSED(ignored)) {
    self->mapped = 0;
    Py_RETURN_NONE;
}

static PyObject *Wire_write(Wire *self, PyObject *args) {
    long payload_type, marker;
    unsigned long seq, ts, abs_send_time;
    PyObject *payload, *audio_level;
    if (!PyArg_ParseTuple(args, "llkkOkO", &payload_type, &marker, &seq, &ts, &payload, &abs_send_time, &audio_level))
        return NULL;
    Py_ssize_t length = write_packet(self, payload_type, marker, (uint32_t)seq & SEQ_MASK, (uint32_t)ts, payload,
                                     (uint32_t)abs_send_time & 0xFFFFFFu, audio_level);
    if (length < 0)
        return NULL;
    return PyBytes_FromStringAndSize((const char *)self->buffer, length);
}

static PyObject *Wire_history(Wire *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    if (seq < 0 || seq > (long)SEQ_MASK || self->history_packets == NULL)
        Py_RETURN_NONE;
    Py_ssize_t index = (Py_ssize_t)(seq % self->history_size);
    PyObject *packet = self->history_numbers[index] == seq ? self->history_packets[index] : NULL;
    if (packet == NULL)
        Py_RETURN_NONE;
    Py_INCREF(packet);
    return packet;
}

static PyObject *Wire_get_mapped(Wire *self, void *Py_UNUSED(closure)) { return PyBool_FromLong(self->mapped); }

static PyMethodDef Wire_methods[] = {
    {"connect", (PyCFunction)Wire_connect, METH_VARARGS,
     "connect(ssrc, mid_element, abs_send_time_id, audio_level_id, session, context, protect, max_length, counters)"},
    {"aim", (PyCFunction)Wire_aim, METH_VARARGS, "aim(socket, host, port): where packets go (socket None: nowhere)"},
    {"forward", (PyCFunction)(void (*)(void))Wire_forward, METH_FASTCALL,
     "forward(payload_type, marker, sequence_number, timestamp, payload, ntp, audio_level, now, clock_rate) -> bool"},
    {"rewrite", (PyCFunction)Wire_rewrite, METH_VARARGS,
     "rewrite(sequence_number, timestamp, ts_gap) -> (sequence_number, timestamp) | None: the rewriting step alone"},
    {"switch_source", (PyCFunction)Wire_switch_source, METH_NOARGS, "the next packet starts a new source"},
    {"write", (PyCFunction)Wire_write, METH_VARARGS,
     "write(payload_type, marker, sequence_number, timestamp, payload, abs_send_time, audio_level) -> bytes"},
    {"history", (PyCFunction)Wire_history, METH_O, "history(sequence_number) -> the plaintext packet sent with it, or None"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Wire_getset[] = {
    {"mapped", (getter)Wire_get_mapped, NULL, "True once a packet of the current source was rewritten", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Wire_members[] = {
    {"packets_sent", T_ULONGLONG, offsetof(Wire, packets_sent), READONLY, "packets forwarded"},
    {"last_length", T_PYSSIZET, offsetof(Wire, last_length), READONLY, "size of the last protected packet"},
    {"dropped", T_ULONGLONG, offsetof(Wire, dropped), READONLY, "packets the kernel refused"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject WireType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media.sfu._wire.Wire",
    .tp_basicsize = sizeof(Wire),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The forwarding step of one outbound RTP stream: rewrite, write, protect, send, remember.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Wire_init,
    .tp_dealloc = (destructor)Wire_dealloc,
    .tp_methods = Wire_methods,
    .tp_members = Wire_members,
    .tp_getset = Wire_getset,
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, .m_name = "media.sfu._wire", .m_doc = "The SFU's per-subscriber forwarding step.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__wire(void) {
    fileno_name = PyUnicode_InternFromString("fileno");
    if (fileno_name == NULL || PyType_Ready(&WireType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&wire_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&WireType);
    if (PyModule_AddObject(module, "Wire", (PyObject *)&WireType) < 0) {
        Py_DECREF(&WireType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
