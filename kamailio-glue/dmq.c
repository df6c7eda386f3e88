/*
 * The static inline API loader of dmq (reg_cluster).
 */
#include "modules/dmq/bind_dmq.h"
#include "ksr_rs_glue.h"

int ksr_rs_load_dmq_api(struct dmq_api *api)
{
	return dmq_load_api(api);
}
