/*
 * gateway/doctor: `nbgate doctor`, the operator's "can this machine run
 * sandboxes and checkpoints, and if not, why" (issue 4 item 1).
 */
#ifndef NBGATE_GATEWAY_DOCTOR_H
#define NBGATE_GATEWAY_DOCTOR_H

#include <stdio.h>

struct gw_cfg;

/*
 * Runs every check against the loaded configuration c (criu_path,
 * image_store, images, seccomp_profile) and this host, and prints one
 * line per check to out: "ok|warn|fail  NAME  reason". Returns the exit
 * code: 0 when sandboxing and checkpointing are both available (warnings
 * allowed), 1 otherwise. Runs CRIU and reads the image store: blocks for
 * up to a few seconds (CLI only, not the event loop).
 */
int gw_doctor_run(const struct gw_cfg *c, FILE *out);

#endif
