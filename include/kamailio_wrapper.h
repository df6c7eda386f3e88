/*
 * The one header bindgen reads: the parts of Kamailio 5.6.3 the module uses,
 * plus the glue prototypes.
 */
#include "core/sr_module.h"
#include "core/dprint.h"
#include "core/mod_fix.h"
#include "core/pvar.h"
#include "core/pvapi.h"
#include "core/usr_avp.h"
#include "core/rpc.h"
#include "core/rpc_lookup.h"
#include "core/kemi.h"
#include "core/data_lump.h"
#include "core/route.h"
#include "core/action.h"
#include "core/dset.h"
#include "core/fmsg.h"
#include "core/receive.h" /* ksr_msg_env_reset */
#include "core/socket_info.h"
#include "core/resolve.h"
#include "core/timer.h"
#include "core/timer_proc.h"
#include "core/pt.h"
#include "core/cfg/cfg_struct.h"
#include "core/counters.h"
#include "core/parser/msg_parser.h"
#include "core/parser/parse_from.h"
#include "core/parser/parse_to.h"
#include "core/parser/parse_uri.h"
#include "core/parser/parse_cseq.h"
#include "core/parser/parse_expires.h"
#include "core/locking.h"
#include "core/srapi.h" /* uac_auth: cb_cseq_update */
#include "core/dset.h" /* uac_auth: rewrite_uri */
#include "lib/srdb1/db.h"
#include "modules/tm/tm_load.h"
#include "modules/rr/api.h"
#include "modules/dialog/dlg_load.h"
#include "modules/dmq/bind_dmq.h" /* reg_cluster */
#include "ksr_rs_glue.h"
