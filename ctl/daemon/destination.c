/* handoffd: the destination side of a migration - the conversation
 * with the source (peer.h has the messages), in the peer connection's
 * thread.  Its phases are dest-phases.c, volume mode's volume-in.c.
 * Everything made for a migration is removed again unless the source's
 * MIGRATION_COMPLETE arrives and the VM resumes here.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "dest-phases.h"
#include "dest-recover.h"
#include "destination.h"
#include "jsonutil.h"
#include "log.h"
#include "names.h"
#include "peer.h"
#include "peer-check.h"
#include "policy.h"
#include "proxy.h"
#include "receiving.h"
#include "uri.h"
#include "volume.h"



/* The conversation broke (the source gone, silent, or talking
 * nonsense): drop what was made - but mounted volumes wait for the
 * source's word (volume.h). */
static void
lost (struct incoming *in, const char *why)
{
  if (in->volume_ready)
    volume_settle_in (in->id);
  else
    dest_drop (in, why);
}
/* START_MIGRATION: who is asking, for what, and does the policy say
 * yes.  Fills IN and answers PERMITTED (0) or DENIED (-1, answered
 * here: nothing was made). */
static int
admit (struct incoming *in, json_t *req, struct channel *c)
{
  const char *id, *vm, *source, *mode = "live", *uri;
  json_t *needs, *a, *row;
  uint64_t timeout_s = 600;
  char err[1024], reason[1024];
  struct uri u;

  /* The message passed peer_check_message: these are there and sound. */
  msg_get_string (req, "id", true, &id, err, sizeof err);
  msg_get_string (req, "vm", true, &vm, err, sizeof err);
  msg_get_string (req, "source", true, &source, err, sizeof err);
  msg_get_string (req, "mode", false, &mode, err, sizeof err);
  msg_get_u64 (req, "timeout_s", false, &timeout_s, err, sizeof err);
  needs = json_object_get (req, "needs");
  peer_address (c, in->src_ip, sizeof in->src_ip);
  uri = hd_peer_uri (source);
  if (uri && strncmp (uri, "tcp://", 6) == 0 &&
      uri_parse (uri, &u, err, sizeof err) == 0) {
    bool same = strcmp (u.host, in->src_ip) == 0;
    uri_free (&u);
    if (!same) {
      snprintf (reason, sizeof reason, "host '%s' connects from %s, not its "
                "address", source, in->src_ip);
      goto denied;
    }
  }
  row = db_vm_get (vm);
  if (row || receiving_claim (vm) == -1) {
    json_decref (row);
    snprintf (reason, sizeof reason, "a VM named '%s' is already here", vm);
    goto denied;
  }
  /* An evacuated host stays empty until 'handoff undrain'. */
  if (cluster_draining ()) {
    receiving_release (vm);
    snprintf (reason, sizeof reason, "host %s drains (handoff evacuate): it "
              "takes no VM until 'handoff undrain %s'", hd.name, hd.name);
    goto denied;
  }
  if (policy_admit (source, needs, reason, sizeof reason) == -1) {
    receiving_release (vm);
    goto denied;
  }
  snprintf (in->id, sizeof in->id, "%s", id);
  snprintf (in->vm, sizeof in->vm, "%s", vm);
  snprintf (in->source, sizeof in->source, "%s", source);
  snprintf (in->mode, sizeof in->mode, "%s", mode);
  in->timeout_ms = (int64_t) timeout_s * 1000 + hd.io_timeout_ms;
  db_journal_start (in->id, vm, "destination", source,
                    json_pack ("{s:s}", "mode", mode));
  a = dest_answer ("PERMITTED", NULL);
  if (chan_send_json (c, a) == -1) {
    json_decref (a);
    dest_drop (in, "the source went away");
    receiving_release (vm);
    return -1;
  }
  json_decref (a);
  log_info ("migration %s: taking VM %s from %s (%s)", id, vm, source, mode);
  hd_crash_point ("admitted");
  return 0;

 denied:
  log_error ("refused VM %s from %s: %s", vm, source, reason);
  a = dest_answer ("DENIED", reason);
  chan_send_json (c, a);
  json_decref (a);
  return -1;
}

/* One message of the conversation: its answer (NULL: none can be
 * given, the conversation ends).  *DONE once the conversation is over;
 * *FATAL if the migration failed here (what was made is dropped);
 * *RESUMED once the VM runs here. */
/* --cascade comes with the message that makes the VM run here. */
static void
keep_cascade (struct incoming *in, json_t *msg)
{
  json_decref (in->cascade);
  in->cascade = json_incref (json_object_get (msg, "cascade"));
}

static json_t *
handle (struct incoming *in, json_t *msg, bool *done, bool *fatal,
        bool *resumed)
{
  const char *type = json_string_value (json_object_get (msg, "type"));
  char err[1024], reason[1024];
  json_t *reply;

  if (!type)
    type = "";
  if (peer_check_message (msg, err, sizeof err) == -1) {
    char q[48];
    snprintf (reason, sizeof reason, "malformed %s: %.900s",
              type[0] ? name_quote (type, q, sizeof q) : "message", err);
    log_error ("migration %s from %s: %s", in->id, in->source, reason);
    *fatal = true;
    return dest_answer (strcmp (type, "MANAGEMENT_STATE") == 0
                        ? "INSTANTIATION_ERROR" : "FAILED", reason);
  }
  if (strcmp (type, "PING") == 0)
    return dest_answer ("PONG", NULL);
  /* Live and offline migrations copy disks and files (volume mode
   * hands its volumes over instead). */
  if (strcmp (type, "MANAGEMENT_STATE") == 0 &&
      strcmp (in->mode, "volume") != 0 && !in->def) {
    reply = dest_prepare (in, msg);
    *fatal = strcmp (json_string_value (json_object_get (reply, "type")),
                     "SUCCESS") != 0;
    return reply;
  }
  if (strcmp (type, "START_VM") == 0 && in->def &&
      strcmp (in->mode, "live") == 0) {
    reply = dest_start_vm (in, json_is_true (json_object_get (msg,
                                                              "prewarm")));
    *fatal = strcmp (json_string_value (json_object_get (reply, "type")),
                     "SUCCESS") != 0;
    return reply;
  }
  if (strcmp (type, "QUEUED_EVENTS") == 0 && in->def) {
    hd_crash_point ("events_received");
    json_decref (in->events);
    in->events = json_incref (json_object_get (msg, "events"));
    return dest_answer ("SUCCESS", NULL);
  }
  if (strcmp (type, "MANAGEMENT_UPDATE") == 0 && in->def) {
    json_object_update (in->objects, json_object_get (msg, "objects"));
    return dest_answer ("SUCCESS", NULL);
  }
  if (strcmp (type, "MIGRATION_COMPLETE") == 0 && in->def && !in->loaded &&
      strcmp (in->mode, "live") == 0 &&
      json_is_true (json_object_get (msg, "hold"))) {
    reply = dest_load (in);
    *fatal = !in->loaded;
    *done = !in->loaded;
    return reply;
  }
  if (strcmp (type, "RESUME") == 0 && in->loaded) {
    keep_cascade (in, msg);
    reply = dest_resume (in, resumed);
    *fatal = !*resumed;
    *done = true;
    return reply;
  }
  if (strcmp (type, "OFFLINE_COMPLETE") == 0 && in->def &&
      strcmp (in->mode, "offline") == 0) {
    reply = dest_complete_offline (in, resumed);
    *fatal = !*resumed;
    *done = true;
    return reply;
  }
  if (strcmp (type, "MIGRATION_COMPLETE") == 0 && in->def && !in->loaded &&
      strcmp (in->mode, "live") == 0) {
    keep_cascade (in, msg);
    reply = dest_complete (in, resumed);
    *fatal = !*resumed;
    *done = true;
    return reply;
  }
  if (strcmp (type, "VOLUME_HANDOFF") == 0 &&
      strcmp (in->mode, "volume") == 0 && !in->volume_ready) {
    reply = volume_receive (in->id, in->vm, in->source, msg);
    if (!reply) {
      /* A volume stays mounted: no answer can be true yet; the source
       * will ask (and is told "active" until it is let go). */
      *done = true;
      return NULL;
    }
    in->volume_ready = strcmp (json_string_value (json_object_get (
                                 reply, "type")), "READY") == 0;
    *done = !in->volume_ready;
    return reply;
  }
  if (strcmp (type, "VOLUME_COMMIT") == 0 && in->volume_ready) {
    in->volume_ready = false;
    *done = true;
    return volume_commit (in->id, in->vm, in->source, msg);
  }
  if (strcmp (type, "ABORT") == 0) {
    const char *why = json_string_value (json_object_get (msg, "reason"));
    snprintf (reason, sizeof reason, "the source aborted: %s",
              why ? why : "no reason given");
    if (in->volume_ready)
      volume_drop (in->id, reason);
    else
      dest_drop (in, reason);
    in->volume_ready = false;
    *done = true;
    return dest_answer ("ABORTED", NULL);
  }
  snprintf (reason, sizeof reason, "unexpected message '%.32s' here", type);
  log_error ("migration %s from %s: %s", in->id, in->source, reason);
  *fatal = true;
  return dest_answer ("FAILED", reason);
}

/* The messages after PERMITTED, each answered, until the migration
 * ends (complete, abort, failure, the source gone or silent).  True if
 * the VM runs (or, offline, is) here now. */
static bool
converse (struct incoming *in, struct channel *c)
{
  bool resumed = false, done = false;
  char reason[1200];

  /* Terminates: every pass ends the conversation or waits at most two
   * I/O timeouts for the source's next message. */
  while (!done) {
    bool eof = false, fatal = false;
    json_t *msg = chan_recv_json (c, hd.io_timeout_ms * 2, &eof), *reply;
    bool bad_frame = !msg && !eof && errno == EPROTO;

    if (!msg) {
      if (bad_frame) {
        /* A frame that is no message: say why, then give up. */
        snprintf (reason, sizeof reason, "malformed message: %s",
                  chan_bad_json (c));
        reply = dest_answer ("FAILED", reason);
        chan_send_json (c, reply);
        json_decref (reply);
      }
      lost (in, eof ? "the source closed the connection"
            : bad_frame ? reason : "the source is silent or sent a bad frame");
      break;
    }
    reply = handle (in, msg, &done, &fatal, &resumed);
    json_decref (msg);
    if (!reply)
      break;
    if (fatal && !resumed) {
      lost (in, json_string_value (json_object_get (reply, "reason")));
      in->volume_ready = false;
      done = true;
    }
    if (chan_send_json (c, reply) == -1 && !done) {
      json_decref (reply);
      lost (in, "the source went away");
      break;
    }
    json_decref (reply);
  }
  if (resumed && strcmp (in->mode, "live") == 0)
    dest_settle_in (in, true);
  else if (resumed && strcmp (in->mode, "offline") == 0)
    dest_settle_in (in, false);
  return resumed;
}

/* START_MIGRATION and what follows on this connection. */
static json_t *
receive (json_t *req, struct channel *c)
{
  struct incoming in = { .timeout_ms = 600000 };

  if (admit (&in, req, c) == 0) {
    bool here = converse (&in, c);
    receiving_release (in.vm);
    /* Only now: the migration on takes the VM as this host's. */
    if (here && strcmp (in.mode, "live") == 0)
      dest_cascade (&in);
  }
  json_decref (in.cascade);
  json_decref (in.src_def);
  json_decref (in.def);
  json_decref (in.objects);
  json_decref (in.events);
  return NULL;
}


/* Does ASKER_IP name HOST's address exactly (its peer URI's host)? */
static bool
is_host (const char *host, const char *asker_ip)
{
  const char *uri = hd_peer_uri (host);
  struct uri u;
  char err[128];
  bool same = false;

  if (uri && uri_parse (uri, &u, err, sizeof err) == 0) {
    same = u.host && strcmp (u.host, asker_ip) == 0;
    uri_free (&u);
  }
  return same;
}

/* A source's migration that ended on another host: was the destination
 * at ASKER_IP one of the candidates that lost?  Only a positive match
 * says so; anything unsure leaves the received files in place. */
static bool
asker_lost (const struct journal_row *r, const char *asker_ip)
{
  const char *to = json_string_value (json_object_get (r->detail, "to"));
  char list[MAX_DESTS * 65 + 8], *save = NULL;

  if (!to || is_host (r->peer, asker_ip))
    return false;
  snprintf (list, sizeof list, "%s", to);
  for (char *h = strtok_r (list, ",", &save); h;
       h = strtok_r (NULL, ",", &save))
    if (strcmp (h, r->peer) != 0 && is_host (h, asker_ip))
      return true;
  return false;
}

/* What this host's journal entry J says of a migration, for a peer at
 * ASKER_IP asking (QUERY_MIGRATION) or asking to drop it (ABORT_IT). */
static const char *
journal_state (json_t *j, bool abort_it, const char *asker_ip)
{
  struct journal_row r = journal_row_read (j);
  bool ended = r.result[0] != '\0';

  if (r.source && abort_it)
    return "held";
  if (r.source && !r.volume && strcmp (r.result, "done") == 0 &&
      asker_lost (&r, asker_ip))
    /* One of several destinations, not the one that won. */
    return "discarded";
  if (r.source)
    /* A destination asks whether this source still holds the VM
     * before it deletes what it received: "released" only once the
     * source let go. */
    return r.volume ? volume_source_state (j)
      : strcmp (r.result, "done") == 0 ? "released" : "held";
  if (r.volume)
    return volume_destination_state (j, abort_it);
  if ((ended && strcmp (r.result, "done") == 0) ||
      (!ended && strcmp (r.phase, "resumed") == 0))
    return "resumed";
  if (ended)
    return "aborted";
  if (strcmp (r.phase, "dropping") == 0) {
    /* Decided: the VM does not run here.  The source asking to drop
     * it is its word that it holds the VM. */
    if (abort_it)
      dest_drop_confirmed (j, "the source asked");
    return "aborted";
  }
  if (abort_it && !receiving_active (r.vm)) {
    dest_drop_confirmed (j, "the source asked");
    return "aborted";
  }
  return "active";
}

/* QUERY_MIGRATION and ABORT_MIGRATION. */
static json_t *
about (json_t *req, bool abort_it, struct channel *c)
{
  char ip[64];

  const char *id;
  char err[256];
  json_t *j;
  const char *state = "unknown";

  if (msg_get_string (req, "id", true, &id, err, sizeof err) != 0)
    return dest_answer ("FAILED", err);
  peer_address (c, ip, sizeof ip);
  j = db_journal_get (id);
  if (j)
    state = journal_state (j, abort_it, ip);
  json_decref (j);
  json_t *a = dest_answer ("STATUS", NULL);
  json_object_set_new (a, "state", json_string (state));
  return a;
}

json_t *
destination_handle (json_t *req, struct channel *c, void *opaque)
{
  const char *type = json_string_value (json_object_get (req, "type"));

  (void) opaque;
  char err[1024];

  if (peer_check_message (req, err, sizeof err) == -1) {
    bool start = type && strcmp (type, "START_MIGRATION") == 0;
    log_error ("peer %s: %s refused: %s", chan_peer_name (c),
               start ? "a migration" : "a message", err);
    return dest_answer (start ? "DENIED" : "FAILED", err);
  }
  if (strcmp (type, "START_MIGRATION") == 0)
    return receive (req, c);
  if (strcmp (type, "QUERY_MIGRATION") == 0)
    return about (req, false, c);
  if (strcmp (type, "ABORT_MIGRATION") == 0)
    return about (req, true, c);
  if (strcmp (type, "RELAY_STREAM") == 0)
    return proxy_relay (req, c);
  /* The source's ABORT after this side already gave up: nothing left. */
  if (strcmp (type, "ABORT") == 0)
    return dest_answer ("ABORTED", NULL);
  /* A source letting go of a stream proxy that had refused. */
  if (strcmp (type, "END") == 0)
    return dest_answer ("ENDED", NULL);
  /* A reachability check ('handoff peers'). */
  if (strcmp (type, "PING") == 0)
    return dest_answer ("PONG", NULL);
  log_error ("peer %s sent '%.32s' outside a migration", chan_peer_name (c),
             type);
  return dest_answer ("FAILED", "unexpected message outside a migration");
}
