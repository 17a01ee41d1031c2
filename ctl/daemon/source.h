/* handoffd: the source side of a live migration (source.c). */
#ifndef HANDOFF_CTL_SOURCE_H
#define HANDOFF_CTL_SOURCE_H

struct migration;

/* The phases of a live migration, in the migration's thread; ends with
 * the record's result event. */
extern void source_run_live (struct migration *m);

#endif /* HANDOFF_CTL_SOURCE_H */
