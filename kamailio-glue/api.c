/*
 * The static inline API loaders of tm, rr and dialog.
 */
#include "modules/tm/tm_load.h"
#include "modules/rr/api.h"
#include "modules/dialog/dlg_load.h"
#include "ksr_rs_glue.h"

int ksr_rs_load_tm_api(struct tm_binds *tmb)
{
	return load_tm_api(tmb);
}

int ksr_rs_load_rr_api(struct rr_binds *rrb)
{
	return load_rr_api(rrb);
}

int ksr_rs_load_dlg_api(struct dlg_binds *dlgb)
{
	return load_dlg_api(dlgb);
}
