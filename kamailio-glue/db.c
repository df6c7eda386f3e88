/*
 * The srdb1 DB API, found at run time instead of at link time: up to 5.x it
 * lives in libsrdb1.so (beside the modules), from 6.0 inside the kamailio
 * binary. A module with a hard dependency on either would fail dlopen() in
 * the other release before the core can compare module_version and print
 * its version-mismatch error; resolved here, a module built for one release
 * loads far enough to be refused cleanly by any other.
 */
#include <dlfcn.h>
#include <stddef.h>
#include "core/dprint.h"
#include "lib/srdb1/db.h"
#include "ksr_rs_glue.h"

typedef int (*db_bind_mod_f)(const str *, db_func_t *);
typedef int (*db_table_version_f)(const db_func_t *, db1_con_t *, const str *);

static void *srdb1_symbol(const char *name)
{
	void *sym;
	void *lib;

	/* 6.x: exported by the core itself */
	sym = dlsym(RTLD_DEFAULT, name);
	if(sym != NULL)
		return sym;
	/* 5.x: the library every db_* module links; the same (already loaded)
	 * instance when the DB module came first */
	lib = dlopen(KSR_RS_SRDB1_PATH, RTLD_NOW | RTLD_GLOBAL);
	if(lib == NULL) {
		LM_ERR("cannot load %s: %s\n", KSR_RS_SRDB1_PATH, dlerror());
		return NULL;
	}
	sym = dlsym(lib, name);
	if(sym == NULL)
		LM_ERR("%s has no symbol %s\n", KSR_RS_SRDB1_PATH, name);
	return sym;
}

int ksr_rs_db_bind_mod(const str *url, db_func_t *dbf)
{
	static db_bind_mod_f bind_mod = NULL;

	if(bind_mod == NULL)
		bind_mod = (db_bind_mod_f)srdb1_symbol("db_bind_mod");
	if(bind_mod == NULL)
		return -1;
	return bind_mod(url, dbf);
}

int ksr_rs_db_table_version(db_func_t *dbf, db1_con_t *con, const str *table)
{
	static db_table_version_f version = NULL;

	if(version == NULL)
		version = (db_table_version_f)srdb1_symbol("db_table_version");
	if(version == NULL)
		return -1;
	return version(dbf, con, table);
}
