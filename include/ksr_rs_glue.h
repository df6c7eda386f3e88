/*
 * Prototypes of the C glue (kamailio-glue/): one thin function for each thing
 * Rust cannot reach because Kamailio exposes it only as a macro or a static
 * inline function. Read by the glue itself and by bindgen.
 */
#ifndef _KSR_RS_GLUE_H_
#define _KSR_RS_GLUE_H_

#include <stddef.h>

struct tm_binds;
struct rr_binds;
struct dlg_binds;
struct dmq_api;

/* version.c: SER_FULL_VERSION and SER_COMPILE_FLAGS of this build */
extern const char ksr_rs_full_version[];
extern const char ksr_rs_compile_flags[];

/* log.c */
int ksr_rs_log_enabled(int level);
void ksr_rs_log(int level, const char *loc, const char *func, const char *msg, int len);

/* mem.c */
void *ksr_rs_pkg_malloc(size_t size);
void ksr_rs_pkg_free(void *p);
void *ksr_rs_shm_malloc(size_t size);
void ksr_rs_shm_free(void *p);

/* lock.c: gen_lock_t in shared memory */
void *ksr_rs_lock_alloc(void);
int ksr_rs_lock_init(void *lock);
void ksr_rs_lock_get(void *lock);
void ksr_rs_lock_release(void *lock);
void ksr_rs_lock_dealloc(void *lock);

/* api.c: the static inline API loaders */
int ksr_rs_load_tm_api(struct tm_binds *tmb);
int ksr_rs_load_rr_api(struct rr_binds *rrb);
int ksr_rs_load_dlg_api(struct dlg_binds *dlgb);
int ksr_rs_load_dmq_api(struct dmq_api *api);

/* db.c: the srdb1 API, resolved at run time (core from 6.0, libsrdb1 before) */
#include "lib/srdb1/db.h"
int ksr_rs_db_bind_mod(const str *url, db_func_t *dbf);
int ksr_rs_db_table_version(db_func_t *dbf, db1_con_t *con, const str *table);

/* reg.c: config framework update in the registration timer process */
void ksr_rs_cfg_update(void);

#endif
