/* handoff CLI: the built-in commands, one file per family:
 * cmd-vm.c (define, undefine, start, stop, list, status, event, label,
 * abort, host, peers, cluster, undrain), cmd-migrate.c, cmd-fleet.c
 * (evacuate), cmd-scan.c (scan, hostid),
 * cmd-keygen.c; help and version in handoff.c.  Each takes its own
 * argv (argv[0] the command) and returns the exit code. */
#ifndef HANDOFF_CLI_COMMANDS_H
#define HANDOFF_CLI_COMMANDS_H

struct cli_command {
  const char *name;
  int (*fn) (int argc, char **argv);
  const char *summary;
};

/* cmd-vm.c */
extern int cmd_define (int argc, char **argv);
extern int cmd_undefine (int argc, char **argv);
extern int cmd_start (int argc, char **argv);
extern int cmd_stop (int argc, char **argv);
extern int cmd_list (int argc, char **argv);
extern int cmd_status (int argc, char **argv);
extern int cmd_event (int argc, char **argv);
extern int cmd_abort (int argc, char **argv);
extern int cmd_host (int argc, char **argv);
extern int cmd_label (int argc, char **argv);
extern int cmd_peers (int argc, char **argv);
extern int cmd_cluster (int argc, char **argv);
extern int cmd_undrain (int argc, char **argv);
/* cmd-migrate.c */
extern int cmd_migrate (int argc, char **argv);
extern int cmd_cutover (int argc, char **argv);
extern int cmd_job (int argc, char **argv);
/* cmd-fleet.c */
extern int cmd_evacuate (int argc, char **argv);
/* cmd-scan.c */
extern int cmd_scan (int argc, char **argv);
extern int cmd_hostid (int argc, char **argv);
/* cmd-keygen.c */
extern int cmd_keygen (int argc, char **argv);

#endif /* HANDOFF_CLI_COMMANDS_H */
