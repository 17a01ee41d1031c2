/* librxfer: the rdma:// back end (librdmacm + libibverbs).
 *
 * Each side of a connection registers a ring of SLOTS buffers of
 * SLOT_SIZE bytes and tells the other its address and key in the
 * rdma_cm private data.  A sender copies data into a registered
 * staging slot and RDMA-writes it, with immediate data holding the
 * length, into the next slot of the peer's ring: the write lands with
 * no CPU at the receiver and consumes one posted receive, whose
 * completion says "slot N holds LEN bytes".  A zero-length slot is the
 * end of the stream.  When the reader has consumed slots it returns
 * them as credits in a small SEND; a sender never has more slots in
 * flight than it holds credits, so nothing is overwritten unread.
 *
 * NOTES ON THE THREAD MODEL
 *
 * One sender and one receiver may use a connection at once.  All state
 * is under rc->lock.  Completions are reaped by whichever thread needs
 * to wait ("progress"): it takes the progressing flag, drops the lock,
 * polls the CQ (sleeping on the completion channel and the CM event
 * channel), then applies what it found under the lock and wakes the
 * others through rc->cond.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "clock.h"
#include "log.h"
#include "ring.h"
#include "sockets.h"
#include "xfer-internal.h"

#define DEFAULT_SLOT_SIZE (256 * 1024)
#define DEFAULT_SLOTS 16
#define MAX_SLOTS RING_MAX_SLOTS

/* Sent in the rdma_cm private data (56 bytes are allowed). */
struct rdma_hello {
  uint64_t addr;                /* Ring address (big-endian). */
  uint32_t rkey;
  uint32_t slots;
  uint32_t slot_size;
  uint32_t magic;               /* "HXRD" */
} __attribute__ ((__packed__));
#define RDMA_HELLO_MAGIC 0x48585244

/* A SEND from reader to writer: "I freed COUNT more slots". */
struct rdma_credit {
  uint32_t count;               /* Big-endian. */
};

enum wr_kind { WR_DATA = 1, WR_CREDIT = 2, WR_RECV = 3 };

struct rdma_conn {
  struct rdma_event_channel *ec;
  struct rdma_cm_id *id;
  struct ibv_pd *pd;
  struct ibv_comp_channel *cc;
  struct ibv_cq *cq;
  int wake_fd;                  /* eventfd: abort. */
  bool established;

  uint32_t slots, slot_size;    /* Our rings. */
  uint8_t *rx_ring;             /* Written by the peer. */
  struct ibv_mr *rx_mr;
  uint8_t *tx_ring;             /* Staging for our writes. */
  struct ibv_mr *tx_mr;
  struct rdma_credit *ctl;      /* Receive buffers for credits. */
  struct ibv_mr *ctl_mr;
  unsigned nrecv;               /* Posted receives. */

  uint64_t remote_addr;         /* The peer's ring. */
  uint32_t remote_rkey, remote_slots, remote_slot_size;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool progressing;             /* A thread is reaping (lock). */
  bool failed;                  /* (lock) */
  char why[256];                /* (lock) */

  struct ring_rx rx;            /* Our ring's accounting (lock). */
  struct ring_tx tx;            /* The peer's ring's (lock). */
  bool tx_eof;                  /* (lock) */
  unsigned sends_inflight;      /* Signalled SENDs/WRITEs outstanding. */
};

struct rdma_listener {
  struct rdma_event_channel *ec;
  struct rdma_cm_id *id;
};

/* ------------------------------------------------------------------ */

static bool
have_device (char *why, size_t len)
{
  int n = 0;
  struct ibv_device **list = ibv_get_device_list (&n);

  if (list)
    ibv_free_device_list (list);
  if (n > 0)
    return true;
  snprintf (why, len, "no RDMA device on this host (ibv_get_device_list "
            "found none: load rdma_rxe and run 'rdma link add rxe0 type rxe "
            "netdev IFACE', or use tcp://)");
  return false;
}

static int
resolve (const char *host, uint16_t port, struct sockaddr_storage *ss,
         bool passive)
{
  struct addrinfo hints = { .ai_family = AF_UNSPEC,
                            .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_NUMERICSERV |
                                        (passive ? AI_PASSIVE : 0) };
  struct addrinfo *res;
  char p[16];
  int r;

  snprintf (p, sizeof p, "%u", port);
  r = getaddrinfo (host, p, &hints, &res);
  if (r != 0) {
    log_error ("rdma://%s:%u: %s", host, port, gai_strerror (r));
    errno = EHOSTUNREACH;
    return -1;
  }
  memcpy (ss, res->ai_addr, res->ai_addrlen);
  freeaddrinfo (res);
  return 0;
}

/* What a listener and a connection both start with: a device to use,
 * the address of U, and a connection-manager id on a non-blocking
 * event channel of its own.  WHO names the endpoint in errors.  On
 * failure nothing is left open. */
static int
cm_open (const char *who, const struct uri *u, bool passive,
         struct sockaddr_storage *ss, struct rdma_event_channel **ec_r,
         struct rdma_cm_id **id_r)
{
  char why[256];

  *ec_r = NULL;
  *id_r = NULL;
  if (!have_device (why, sizeof why)) {
    log_error ("%s: %s", who, why);
    errno = ENODEV;
    return -1;
  }
  if (resolve (u->host, u->port, ss, passive) == -1)
    return -1;
  *ec_r = rdma_create_event_channel ();
  if (!*ec_r || fcntl ((*ec_r)->fd, F_SETFL, O_NONBLOCK) == -1 ||
      rdma_create_id (*ec_r, id_r, NULL, RDMA_PS_TCP) == -1) {
    int e = errno;
    log_error ("%s: %m", who);
    if (*ec_r)
      rdma_destroy_event_channel (*ec_r);
    *ec_r = NULL;
    *id_r = NULL;
    errno = e;
    return -1;
  }
  return 0;
}

/* Wait for one CM event of type WANT on EC. */
static int
wait_cm_event (struct rdma_event_channel *ec, enum rdma_cm_event_type want,
               int64_t deadline, struct rdma_cm_event **ev_r,
               const char *what)
{
  struct rdma_cm_event *ev;

  /* Terminates: each pass waits against the deadline. */
  for (;;) {
    if (rdma_get_cm_event (ec, &ev) == 0)
      break;
    if (errno != EAGAIN) {
      log_error ("rdma: %s: %m", what ? what : "accept");
      return -1;
    }
    if (sock_wait (ec->fd, POLLIN, deadline) == -1) {
      /* Waiting for a connection that has not come is not an error. */
      if (what)
        log_error ("rdma: %s: %s", what,
                   errno == ETIMEDOUT ? "timed out" : strerror (errno));
      return -1;
    }
  }
  if (ev->event != want) {
    log_error ("rdma: %s: got %s (status %d)", what ? what : "accept",
               rdma_event_str (ev->event), ev->status);
    rdma_ack_cm_event (ev);
    errno = ev->event == RDMA_CM_EVENT_REJECTED ? ECONNREFUSED : EPROTO;
    return -1;
  }
  *ev_r = ev;
  return 0;
}

static int
post_recv (struct rdma_conn *rc, unsigned i)
{
  struct ibv_sge sge = {
    .addr = (uintptr_t) &rc->ctl[i], .length = sizeof rc->ctl[i],
    .lkey = rc->ctl_mr->lkey,
  };
  struct ibv_recv_wr wr = {
    .wr_id = ((uint64_t) WR_RECV << 32) | i, .sg_list = &sge, .num_sge = 1,
  }, *bad;

  return ibv_post_recv (rc->id->qp, &wr, &bad) == 0 ? 0 : -1;
}

/* PD, CQ, QP, rings and posted receives on ID's device. */
static int
setup_resources (struct rdma_conn *rc, struct rdma_cm_id *id,
                 const struct xfer_opts *o)
{
  struct ibv_qp_init_attr qa;
  size_t ring;

  rc->id = id;
  rc->slot_size = o->rdma_slot_size ? o->rdma_slot_size : DEFAULT_SLOT_SIZE;
  rc->slots = o->rdma_slots ? o->rdma_slots : DEFAULT_SLOTS;
  if (rc->slots > MAX_SLOTS)
    rc->slots = MAX_SLOTS;
  /* Room for a slot-full of data writes plus as many credit messages. */
  rc->nrecv = 2 * rc->slots + 8;
  ring = (size_t) rc->slots * rc->slot_size;
  ring_rx_init (&rc->rx, rc->slots, rc->slot_size);

  rc->pd = ibv_alloc_pd (id->verbs);
  if (!rc->pd)
    goto verbs_error;
  rc->cc = ibv_create_comp_channel (id->verbs);
  if (!rc->cc)
    goto verbs_error;
  if (fcntl (rc->cc->fd, F_SETFL, O_NONBLOCK) == -1)
    goto verbs_error;
  rc->cq = ibv_create_cq (id->verbs, (int) (rc->nrecv + 2 * rc->slots + 16),
                          NULL, rc->cc, 0);
  if (!rc->cq)
    goto verbs_error;
  memset (&qa, 0, sizeof qa);
  qa.send_cq = rc->cq;
  qa.recv_cq = rc->cq;
  qa.qp_type = IBV_QPT_RC;
  qa.cap.max_send_wr = 2 * rc->slots + 8;
  qa.cap.max_recv_wr = rc->nrecv;
  qa.cap.max_send_sge = 1;
  qa.cap.max_recv_sge = 1;
  qa.cap.max_inline_data = sizeof (struct rdma_credit);
  if (rdma_create_qp (id, rc->pd, &qa) == -1)
    goto verbs_error;

  rc->rx_ring = aligned_alloc (4096, ring);
  rc->tx_ring = aligned_alloc (4096, ring);
  rc->ctl = calloc (rc->nrecv, sizeof *rc->ctl);
  if (!rc->rx_ring || !rc->tx_ring || !rc->ctl) {
    errno = ENOMEM;
    goto verbs_error;
  }
  rc->rx_mr = ibv_reg_mr (rc->pd, rc->rx_ring, ring,
                          IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  rc->tx_mr = ibv_reg_mr (rc->pd, rc->tx_ring, ring, IBV_ACCESS_LOCAL_WRITE);
  rc->ctl_mr = ibv_reg_mr (rc->pd, rc->ctl, rc->nrecv * sizeof *rc->ctl,
                           IBV_ACCESS_LOCAL_WRITE);
  if (!rc->rx_mr || !rc->tx_mr || !rc->ctl_mr)
    goto verbs_error;
  for (unsigned i = 0; i < rc->nrecv; ++i)
    if (post_recv (rc, i) == -1)
      goto verbs_error;
  if (ibv_req_notify_cq (rc->cq, 0) != 0)
    goto verbs_error;
  return 0;

 verbs_error:
  log_error ("rdma: setting up the queue pair: %m");
  return -1;
}

static void
fill_hello (const struct rdma_conn *rc, struct rdma_hello *h)
{
  h->addr = htobe64 ((uintptr_t) rc->rx_ring);
  h->rkey = htobe32 (rc->rx_mr->rkey);
  h->slots = htobe32 (rc->slots);
  h->slot_size = htobe32 (rc->slot_size);
  h->magic = htobe32 (RDMA_HELLO_MAGIC);
}

static int
read_hello (struct rdma_conn *rc, const void *data, uint8_t len)
{
  struct rdma_hello h;

  if (!data || len < sizeof h) {
    log_error ("rdma: the peer sent no ring description");
    errno = EPROTO;
    return -1;
  }
  memcpy (&h, data, sizeof h);
  if (be32toh (h.magic) != RDMA_HELLO_MAGIC || be32toh (h.slots) == 0 ||
      be32toh (h.slots) > MAX_SLOTS || be32toh (h.slot_size) < 4096 ||
      be32toh (h.slot_size) > (16u << 20)) {
    log_error ("rdma: the peer's ring description is invalid");
    errno = EPROTO;
    return -1;
  }
  rc->remote_addr = be64toh (h.addr);
  rc->remote_rkey = be32toh (h.rkey);
  rc->remote_slots = be32toh (h.slots);
  rc->remote_slot_size = be32toh (h.slot_size);
  ring_tx_init (&rc->tx, rc->remote_slots, rc->slots);
  return 0;
}

static struct rdma_conn *
rc_new (void)
{
  struct rdma_conn *rc = calloc (1, sizeof *rc);
  pthread_condattr_t a;

  if (!rc)
    return NULL;
  pthread_mutex_init (&rc->lock, NULL);
  pthread_condattr_init (&a);
  pthread_condattr_setclock (&a, CLOCK_MONOTONIC);
  pthread_cond_init (&rc->cond, &a);
  pthread_condattr_destroy (&a);
  rc->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (rc->wake_fd == -1) {
    free (rc);
    return NULL;
  }
  return rc;
}

static void
rc_free (struct rdma_conn *rc)
{
  if (!rc)
    return;
  if (rc->id && rc->established)
    rdma_disconnect (rc->id);
  if (rc->id && rc->id->qp)
    rdma_destroy_qp (rc->id);
  if (rc->rx_mr)
    ibv_dereg_mr (rc->rx_mr);
  if (rc->tx_mr)
    ibv_dereg_mr (rc->tx_mr);
  if (rc->ctl_mr)
    ibv_dereg_mr (rc->ctl_mr);
  if (rc->cq)
    ibv_destroy_cq (rc->cq);
  if (rc->cc)
    ibv_destroy_comp_channel (rc->cc);
  if (rc->pd)
    ibv_dealloc_pd (rc->pd);
  if (rc->id)
    rdma_destroy_id (rc->id);
  if (rc->ec)
    rdma_destroy_event_channel (rc->ec);
  free (rc->rx_ring);
  free (rc->tx_ring);
  free (rc->ctl);
  close (rc->wake_fd);
  pthread_mutex_destroy (&rc->lock);
  pthread_cond_destroy (&rc->cond);
  free (rc);
}

/* ------------------------------------------------------------------ */
/* Progress: reap completions and CM events. */

static void
fail_locked (struct rdma_conn *rc, const char *why)
{
  if (!rc->failed) {
    rc->failed = true;
    snprintf (rc->why, sizeof rc->why, "%s", why);
  }
  pthread_cond_broadcast (&rc->cond);
}

static void
apply_wc_locked (struct rdma_conn *rc, const struct ibv_wc *wc)
{
  enum wr_kind kind = (enum wr_kind) (wc->wr_id >> 32);
  unsigned idx = (unsigned) (wc->wr_id & 0xffffffff);
  char why[128];

  if (wc->status != IBV_WC_SUCCESS) {
    snprintf (why, sizeof why, "work request failed: %s",
              ibv_wc_status_str (wc->status));
    fail_locked (rc, why);
    return;
  }
  switch (kind) {
  case WR_DATA:
    ring_tx_completed (&rc->tx);
    rc->sends_inflight--;
    break;
  case WR_CREDIT:
    rc->sends_inflight--;
    break;
  case WR_RECV:
    if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
      if (ring_rx_filled (&rc->rx, ntohl (wc->imm_data)) == -1) {
        fail_locked (rc, "the peer overran our ring");
        return;
      }
    }
    else if (wc->opcode == IBV_WC_RECV) {
      if (wc->byte_len != sizeof (struct rdma_credit)) {
        fail_locked (rc, "malformed credit message");
        return;
      }
      if (ring_tx_credit (&rc->tx, be32toh (rc->ctl[idx].count)) == -1) {
        fail_locked (rc, "bad credit count");
        return;
      }
    }
    if (post_recv (rc, idx) == -1)
      fail_locked (rc, "cannot post a receive");
    break;
  default:
    fail_locked (rc, "unknown completion");
  }
}

/* Called with rc->lock held; returns with it held.  Waits for something
 * to happen (or the deadline) and applies it. */
static int
progress_locked (struct rdma_conn *rc, int64_t deadline)
{
  struct ibv_wc wc[32];
  int n;

  if (rc->progressing) {
    /* Another thread is reaping: wait for it to report. */
    struct timespec ts =
      abstime_of_ms (deadline < 0 ? clock_ms () + 100 : deadline);
    pthread_cond_timedwait (&rc->cond, &rc->lock, &ts);
    return 0;
  }
  rc->progressing = true;
  pthread_mutex_unlock (&rc->lock);

  n = ibv_poll_cq (rc->cq, 32, wc);
  if (n == 0) {
    struct pollfd pfd[3] = {
      { .fd = rc->cc->fd, .events = POLLIN },
      { .fd = rc->ec->fd, .events = POLLIN },
      { .fd = rc->wake_fd, .events = POLLIN },
    };
    int64_t left = deadline < 0 ? 1000 : deadline - clock_ms ();
    if (left > 1000)
      left = 1000;
    if (left < 0)
      left = 0;
    if (poll (pfd, 3, (int) left) > 0) {
      if (pfd[0].revents & POLLIN) {
        struct ibv_cq *cq;
        void *ctx;
        if (ibv_get_cq_event (rc->cc, &cq, &ctx) == 0) {
          ibv_ack_cq_events (cq, 1);
          ibv_req_notify_cq (rc->cq, 0);
        }
      }
      if (pfd[1].revents & POLLIN) {
        struct rdma_cm_event *ev;
        if (rdma_get_cm_event (rc->ec, &ev) == 0) {
          enum rdma_cm_event_type t = ev->event;
          rdma_ack_cm_event (ev);
          if (t == RDMA_CM_EVENT_DISCONNECTED ||
              t == RDMA_CM_EVENT_DEVICE_REMOVAL) {
            pthread_mutex_lock (&rc->lock);
            fail_locked (rc, "the peer disconnected");
            pthread_mutex_unlock (&rc->lock);
          }
        }
      }
    }
    n = ibv_poll_cq (rc->cq, 32, wc);
  }
  pthread_mutex_lock (&rc->lock);
  if (n < 0)
    fail_locked (rc, "polling the completion queue failed");
  for (int i = 0; i < n; ++i)
    apply_wc_locked (rc, &wc[i]);
  rc->progressing = false;
  pthread_cond_broadcast (&rc->cond);
  if (deadline >= 0 && clock_ms () >= deadline) {
    errno = ETIMEDOUT;
    return -1;
  }
  return 0;
}

/* Report freed slots to the writer (FORCE: any; else only once a
 * quarter of the ring is owed).  Locked. */
static int
send_credits_locked (struct rdma_conn *rc, bool force)
{
  uint32_t n = ring_rx_take_credits (&rc->rx, (rc->slots + 3) / 4, force);
  struct rdma_credit msg = { .count = htobe32 (n) };
  struct ibv_sge sge = { .addr = (uintptr_t) &msg, .length = sizeof msg };
  struct ibv_send_wr wr = {
    .wr_id = (uint64_t) WR_CREDIT << 32, .sg_list = &sge, .num_sge = 1,
    .opcode = IBV_WR_SEND,
    .send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE,
  }, *bad;

  if (n == 0)
    return 0;
  if (ibv_post_send (rc->id->qp, &wr, &bad) != 0) {
    fail_locked (rc, "cannot post a credit message");
    return -1;
  }
  rc->sends_inflight++;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Transport ops. */

static int
rdma_listen_op (struct xfer_listener *l, const struct uri *u)
{
  struct rdma_listener *rl = calloc (1, sizeof *rl);
  struct sockaddr_storage ss;

  if (!rl)
    return -1;
  if (cm_open (l->uri, u, true, &ss, &rl->ec, &rl->id) == -1) {
    free (rl);
    return -1;
  }
  if (rdma_bind_addr (rl->id, (struct sockaddr *) &ss) == -1 ||
      rdma_listen (rl->id, 16) == -1) {
    log_error ("%s: listen: %m", l->uri);
    goto error;
  }
  l->priv = rl;
  return 0;

 error:
  if (rl->id)
    rdma_destroy_id (rl->id);
  if (rl->ec)
    rdma_destroy_event_channel (rl->ec);
  free (rl);
  return -1;
}

static int
rdma_listener_port_op (const struct xfer_listener *l, uint16_t *port_r)
{
  const struct rdma_listener *rl = l->priv;

  *port_r = ntohs (rdma_get_src_port (rl->id));
  return 0;
}

static void
rdma_listener_close_op (struct xfer_listener *l)
{
  struct rdma_listener *rl = l->priv;

  if (!rl)
    return;
  rdma_destroy_id (rl->id);
  rdma_destroy_event_channel (rl->ec);
  free (rl);
  l->priv = NULL;
}

static int
rdma_accept_op (struct xfer_listener *l, struct xfer_conn *c,
                int64_t wait_deadline)
{
  struct rdma_listener *rl = l->priv;
  struct rdma_conn *rc = rc_new ();
  struct rdma_cm_event *ev;
  struct rdma_cm_id *id;
  struct rdma_conn_param param;
  struct rdma_hello mine;
  char addr[INET6_ADDRSTRLEN] = "?";

  if (!rc)
    return -1;
  if (wait_cm_event (rl->ec, RDMA_CM_EVENT_CONNECT_REQUEST, wait_deadline,
                     &ev, NULL) == -1) {
    rc_free (rc);
    return -1;
  }
  id = ev->id;
  /* Keep the peer's ring description: it is read once our own ring
   * exists (the staging accounting needs both). */
  uint8_t hello[sizeof (struct rdma_hello)] = { 0 };
  uint8_t hello_len = ev->param.conn.private_data_len;
  if (ev->param.conn.private_data && hello_len >= sizeof hello)
    memcpy (hello, ev->param.conn.private_data, sizeof hello);
  else
    hello_len = 0;
  rdma_ack_cm_event (ev);
  struct sockaddr *sa = rdma_get_peer_addr (id);
  if (sa->sa_family == AF_INET)
    inet_ntop (AF_INET, &((struct sockaddr_in *) sa)->sin_addr, addr,
               sizeof addr);
  snprintf (c->peer, sizeof c->peer, "rdma://%s", addr);

  /* The connection gets its own event channel. */
  rc->ec = rdma_create_event_channel ();
  if (!rc->ec || fcntl (rc->ec->fd, F_SETFL, O_NONBLOCK) == -1 ||
      rdma_migrate_id (id, rc->ec) == -1) {
    log_error ("%s: %m", c->peer);
    rdma_reject (id, NULL, 0);
    rdma_destroy_id (id);
    rc_free (rc);
    return -1;
  }
  if (setup_resources (rc, id, &c->opts) == -1 ||
      read_hello (rc, hello_len ? hello : NULL, hello_len) == -1) {
    rdma_reject (id, NULL, 0);
    rc_free (rc);
    return -1;
  }
  fill_hello (rc, &mine);
  memset (&param, 0, sizeof param);
  param.private_data = &mine;
  param.private_data_len = sizeof mine;
  param.responder_resources = 1;
  param.initiator_depth = 1;
  param.rnr_retry_count = 7;
  if (rdma_accept (id, &param) == -1) {
    log_error ("%s: accept: %m", c->peer);
    rc_free (rc);
    return -1;
  }
  if (wait_cm_event (rc->ec, RDMA_CM_EVENT_ESTABLISHED,
                     xfer_setup_deadline (c), &ev, "establishing") == -1) {
    rc_free (rc);
    return -1;
  }
  rdma_ack_cm_event (ev);
  rc->established = true;
  c->priv = rc;
  return 0;
}

static int
rdma_connect_op (struct xfer_conn *c, const struct uri *u, int64_t deadline)
{
  struct rdma_conn *rc = rc_new ();
  struct sockaddr_storage ss;
  struct rdma_cm_event *ev;
  struct rdma_conn_param param;
  struct rdma_hello mine;
  int r;

  if (!rc)
    return -1;
  if (cm_open (c->peer, u, false, &ss, &rc->ec, &rc->id) == -1)
    goto error;
  if (rdma_resolve_addr (rc->id, NULL, (struct sockaddr *) &ss, 5000) == -1 ||
      wait_cm_event (rc->ec, RDMA_CM_EVENT_ADDR_RESOLVED, deadline, &ev,
                     "resolving the address") == -1)
    goto error;
  rdma_ack_cm_event (ev);
  if (rdma_resolve_route (rc->id, 5000) == -1 ||
      wait_cm_event (rc->ec, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline, &ev,
                     "resolving the route") == -1)
    goto error;
  rdma_ack_cm_event (ev);
  if (setup_resources (rc, rc->id, &c->opts) == -1)
    goto error;
  fill_hello (rc, &mine);
  memset (&param, 0, sizeof param);
  param.private_data = &mine;
  param.private_data_len = sizeof mine;
  param.responder_resources = 1;
  param.initiator_depth = 1;
  param.retry_count = 7;
  param.rnr_retry_count = 7;
  if (rdma_connect (rc->id, &param) == -1 ||
      wait_cm_event (rc->ec, RDMA_CM_EVENT_ESTABLISHED, deadline, &ev,
                     "connecting") == -1)
    goto error;
  r = read_hello (rc, ev->param.conn.private_data,
                  ev->param.conn.private_data_len);
  rdma_ack_cm_event (ev);
  rc->established = true;
  if (r == -1)
    goto error;
  c->priv = rc;
  return 0;

 error:
  {
    int e = errno;
    rc_free (rc);
    errno = e;
  }
  return -1;
}

static int
fail_errno (struct rdma_conn *rc)
{
  log_debug ("rdma: %s", rc->why);
  errno = strstr (rc->why, "disconnected") ? ECONNRESET : EIO;
  return -1;
}

/* Write one slot (LEN may be 0: end of stream).  Locked. */
static int
write_slot_locked (struct rdma_conn *rc, const void *buf, uint32_t len,
                   int64_t deadline)
{
  uint32_t rslot, sslot;

  /* Wait for a credit and a free staging slot. */
  while (!rc->failed && !ring_tx_can_write (&rc->tx))
    if (progress_locked (rc, deadline) == -1)
      return -1;
  if (rc->failed)
    return fail_errno (rc);

  ring_tx_next (&rc->tx, &rslot, &sslot);
  uint8_t *stage = rc->tx_ring + (size_t) sslot * rc->slot_size;
  uint64_t raddr = rc->remote_addr +
    (uint64_t) rslot * rc->remote_slot_size;
  struct ibv_sge sge = { .addr = (uintptr_t) stage, .length = len,
                         .lkey = rc->tx_mr->lkey };
  struct ibv_send_wr wr = {
    .wr_id = (uint64_t) WR_DATA << 32, .sg_list = &sge,
    .num_sge = len ? 1 : 0, .opcode = IBV_WR_RDMA_WRITE_WITH_IMM,
    .send_flags = IBV_SEND_SIGNALED, .imm_data = htonl (len),
  }, *bad;

  wr.wr.rdma.remote_addr = raddr;
  wr.wr.rdma.rkey = rc->remote_rkey;
  if (len)
    memcpy (stage, buf, len);
  if (ibv_post_send (rc->id->qp, &wr, &bad) != 0) {
    fail_locked (rc, "cannot post a write");
    return fail_errno (rc);
  }
  rc->sends_inflight++;
  return 0;
}

static int
rdma_send_op (struct xfer_conn *c, const void *buf, size_t n,
              int64_t deadline)
{
  struct rdma_conn *rc = c->priv;
  const uint8_t *p = buf;
  uint32_t max = rc->remote_slot_size < rc->slot_size
    ? rc->remote_slot_size : rc->slot_size;
  int r = 0;

  pthread_mutex_lock (&rc->lock);
  if (rc->tx_eof) {
    errno = EPIPE;
    r = -1;
  }
  while (r == 0 && n > 0) {
    uint32_t len = n > max ? max : (uint32_t) n;
    r = write_slot_locked (rc, p, len, deadline);
    p += len;
    n -= len;
  }
  pthread_mutex_unlock (&rc->lock);
  return r;
}

static ssize_t
rdma_recv_op (struct xfer_conn *c, void *buf, size_t n, int64_t deadline)
{
  struct rdma_conn *rc = c->priv;
  size_t got;

  pthread_mutex_lock (&rc->lock);
  /* Terminates: each pass consumes data, or waits against the
   * deadline. */
  for (;;) {
    got = ring_rx_consume (&rc->rx, rc->rx_ring, buf, n);
    if (got > 0 || rc->rx.eof) {
      send_credits_locked (rc, false);
      break;
    }
    if (rc->failed) {
      pthread_mutex_unlock (&rc->lock);
      return fail_errno (rc);
    }
    /* About to wait: give back what we freed first, or the writer may
     * be waiting for exactly those credits. */
    send_credits_locked (rc, true);
    if (progress_locked (rc, deadline) == -1) {
      pthread_mutex_unlock (&rc->lock);
      return -1;
    }
  }
  pthread_mutex_unlock (&rc->lock);
  return (ssize_t) got;
}

static int
rdma_shutdown_write_op (struct xfer_conn *c)
{
  struct rdma_conn *rc = c->priv;
  int r;

  pthread_mutex_lock (&rc->lock);
  if (rc->tx_eof) {
    pthread_mutex_unlock (&rc->lock);
    return 0;
  }
  r = write_slot_locked (rc, NULL, 0, clock_ms () + 10000);
  rc->tx_eof = true;
  pthread_mutex_unlock (&rc->lock);
  return r;
}

static void
rdma_abort_op (struct xfer_conn *c)
{
  struct rdma_conn *rc = c->priv;
  uint64_t one = 1;

  if (!rc)
    return;
  pthread_mutex_lock (&rc->lock);
  fail_locked (rc, "aborted");
  pthread_mutex_unlock (&rc->lock);
  if (write (rc->wake_fd, &one, sizeof one) < 0)
    log_debug ("rdma: wake: %m");
}

static void
rdma_close_op (struct xfer_conn *c)
{
  struct rdma_conn *rc = c->priv;

  if (!rc)
    return;
  /* Let our last writes (the end of stream above all) complete before
   * the queue pair goes away. */
  pthread_mutex_lock (&rc->lock);
  int64_t deadline = clock_ms () + 2000;
  while (!rc->failed && rc->sends_inflight > 0 && clock_ms () < deadline)
    progress_locked (rc, deadline);
  pthread_mutex_unlock (&rc->lock);
  rc_free (rc);
  c->priv = NULL;
}

const struct xfer_transport xfer_transport_rdma = {
  .name = "rdma",
  .listen = rdma_listen_op,
  .listener_port = rdma_listener_port_op,
  .accept = rdma_accept_op,
  .listener_close = rdma_listener_close_op,
  .connect = rdma_connect_op,
  .send = rdma_send_op,
  .recv = rdma_recv_op,
  .shutdown_write = rdma_shutdown_write_op,
  .abort = rdma_abort_op,
  .close = rdma_close_op,
};
