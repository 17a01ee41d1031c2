/* nbd-mirror: the control socket server. */
#ifndef HANDOFF_MIRROR_CONTROL_H
#define HANDOFF_MIRROR_CONTROL_H

extern int control_start (const char *path);
extern void control_stop (void);

#endif /* HANDOFF_MIRROR_CONTROL_H */
