//! Kamailio's generic DB layer (`lib/srdb1`): bind the module named by a DB URL
//! (db_sqlite, db_postgres, db_mysql...), open a connection, check a table version, and
//! read rows into owned Rust values. Every connection is closed on drop.

use std::os::raw::c_int;
use std::ptr::NonNull;

use crate::host::HostError;
use crate::host::str::borrowed_str;
use crate::sys;

/// A typed column value, copied out of the DB module's result.
#[derive(Debug, Clone, PartialEq)]
pub enum DbValue {
    Null,
    Int(i64),
    Double(f64),
    Str(Vec<u8>),
}

impl DbValue {
    /// The value as bytes (numbers printed), empty for NULL.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            DbValue::Null => Vec::new(),
            DbValue::Int(i) => i.to_string().into_bytes(),
            DbValue::Double(d) => d.to_string().into_bytes(),
            DbValue::Str(s) => s.clone(),
        }
    }

    /// The value as an integer (strings parsed), 0 for NULL or garbage.
    pub fn int(&self) -> i64 {
        match self {
            DbValue::Null => 0,
            DbValue::Int(i) => *i,
            DbValue::Double(d) => *d as i64,
            DbValue::Str(s) => std::str::from_utf8(s)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0),
        }
    }
}

/// `DB_CAP_QUERY` (`lib/srdb1/db_cap.h`): all the module needs is query.
const DB_CAP_QUERY: u32 = 1;
/// `DB_CAP_RAW_QUERY`: SQL text queries (used to page a db_sqlite table).
const DB_CAP_RAW_QUERY: u32 = 1 << 1;
/// `DB_CAP_FETCH`: results fetched a number of rows at a time.
const DB_CAP_FETCH: u32 = 1 << 6;

/// An open connection with its bound functions.
pub struct DbConn {
    dbf: sys::db_func_t,
    con: NonNull<sys::db1_con_t>,
    /// The URL names db_sqlite (which cannot fetch, but can page by rowid).
    sqlite: bool,
}

/// How [`DbConn::select_each`] read the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// `fetch_result`, `batch` rows at a time (db_mysql, db_postgres...).
    Fetch,
    /// db_sqlite: `LIMIT batch` pages ordered by rowid.
    Pages,
    /// One result with every row (drivers that can do neither).
    Whole,
}

/// An SQL identifier we may put in a query unquoted-safe: letters, digits, `_`.
fn plain_identifier(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

impl DbConn {
    /// `db_bind_mod` + `init` for `url` (pkg memory of the calling process).
    pub fn open(url: &[u8]) -> Result<DbConn, HostError> {
        let mut dbf = sys::db_func_t::default();
        let s = borrowed_str(url);
        // SAFETY: `s` points to `url` for the call; the core copies what it keeps and fills
        // `dbf`, which we own.
        if unsafe { sys::ksr_rs_db_bind_mod(&s, &mut dbf) } != 0 {
            return Err(HostError::DbBind);
        }
        if dbf.cap & DB_CAP_QUERY != DB_CAP_QUERY {
            return Err(HostError::DbCapabilities);
        }
        let (Some(init), Some(_), Some(_), Some(_), Some(_)) = (
            dbf.init,
            dbf.close,
            dbf.use_table,
            dbf.query,
            dbf.free_result,
        ) else {
            return Err(HostError::DbCapabilities);
        };
        // SAFETY: `init` is the bound module's function; `s` is valid for the call and the
        // module copies the URL into the connection.
        let con = unsafe { init(&s) };
        let con = NonNull::new(con).ok_or(HostError::DbConnect)?;
        Ok(DbConn {
            dbf,
            con,
            sqlite: url.starts_with(b"sqlite:"),
        })
    }

    /// `db_table_version(table)`: the version recorded in the `version` table, 0 when it
    /// has no row for `table`.
    pub fn table_version(&mut self, table: &[u8]) -> Result<u32, HostError> {
        let s = borrowed_str(table);
        // SAFETY: `dbf` and `con` are the bound functions and open connection; `s` is
        // valid for the call.
        let rc = unsafe { sys::ksr_rs_db_table_version(&mut self.dbf, self.con.as_ptr(), &s) };
        u32::try_from(rc).map_err(|_| HostError::DbTableVersion)
    }

    fn use_table(&mut self, table: &[u8]) -> Result<(), HostError> {
        let t = borrowed_str(table);
        let use_table = self.dbf.use_table.ok_or(HostError::DbUseTable)?; // ok: checked in open
        // SAFETY: open connection; `t` valid for the call (the module keeps the pointer
        // only until the next use_table, and `table` outlives this connection's queries).
        if unsafe { use_table(self.con.as_ptr(), &t) } < 0 {
            return Err(HostError::DbUseTable);
        }
        Ok(())
    }

    /// Runs `query` for `columns` (with `key = value` when `filter` is given); with
    /// `res` null, the driver keeps the result for `fetch_result`.
    ///
    /// # Safety
    /// `res` is null or points to a writable result pointer; a result the driver
    /// stores there belongs to the caller, who frees it with [`DbConn::free`].
    unsafe fn query(
        &mut self,
        columns: &[&str],
        filter: Option<(&str, &[u8])>,
        res: *mut *mut sys::db1_res_t,
    ) -> Result<(), HostError> {
        let col_strs: Vec<sys::str_> = columns.iter().map(|c| borrowed_str(c.as_bytes())).collect();
        let col_keys: Vec<sys::db_key_t> = col_strs
            .iter()
            .map(|s| s as *const sys::str_ as sys::db_key_t)
            .collect();
        let key_str;
        let key: [sys::db_key_t; 1];
        let mut val = [sys::db_val_t::default()];
        let (kp, vp, nk) = match filter {
            Some((k, v)) => {
                key_str = borrowed_str(k.as_bytes());
                key = [&key_str as *const sys::str_ as sys::db_key_t];
                val[0].type_ = sys::DB1_STR;
                val[0].nul = 0;
                val[0].val.str_val = borrowed_str(v);
                (key.as_ptr(), val.as_ptr(), 1)
            }
            None => (std::ptr::null(), std::ptr::null(), 0),
        };
        let query = self.dbf.query.ok_or(HostError::DbQuery)?;
        // SAFETY: keys, values and columns point to locals alive for the call; `res` is
        // null or writable (caller's contract); the module allocates the result
        // there, freed by the caller.
        let rc = unsafe {
            query(
                self.con.as_ptr(),
                kp,
                std::ptr::null(),
                vp,
                col_keys.as_ptr(),
                nk,
                col_keys.len() as c_int,
                std::ptr::null_mut(),
                res,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(HostError::DbQuery)
        }
    }

    /// Frees a result of this connection.
    ///
    /// # Safety
    /// `res` is null or a result this connection's driver returned and nobody
    /// freed yet; it is not used afterwards.
    unsafe fn free(&mut self, res: *mut sys::db1_res_t) {
        if !res.is_null()
            && let Some(free) = self.dbf.free_result
        {
            // SAFETY: a live result of this connection (caller's contract).
            unsafe { free(self.con.as_ptr(), res) };
        }
    }

    /// Selects `columns` from `table`, with `key = value` when `filter` is given.
    pub fn select(
        &mut self,
        table: &[u8],
        columns: &[&str],
        filter: Option<(&str, &[u8])>,
    ) -> Result<Vec<Vec<DbValue>>, HostError> {
        self.use_table(table)?;
        let mut res: *mut sys::db1_res_t = std::ptr::null_mut();
        // SAFETY: `res` is a local result pointer, freed below.
        let rc = unsafe { self.query(columns, filter, &mut res) };
        let rows = if rc.is_ok() && !res.is_null() {
            // SAFETY: a successful query returned a valid result.
            Some(unsafe { copy_rows(&*res, columns.len()) })
        } else {
            None
        };
        // SAFETY: null or the result of the query above, copied out already.
        unsafe { self.free(res) };
        rows.ok_or(HostError::DbQuery)
    }

    /// Reads every row of `table` (`columns`) and hands each to `f`, holding at most
    /// `batch` rows of the driver's result (pkg memory) at a time: `fetch_result`
    /// where the driver has it, pages by rowid for db_sqlite, one whole result
    /// otherwise. Returns how the table was read.
    pub fn select_each(
        &mut self,
        table: &[u8],
        columns: &[&str],
        batch: usize,
        mut f: impl FnMut(&[DbValue]),
    ) -> Result<ReadMode, HostError> {
        let batch = batch.clamp(1, i32::MAX as usize);
        if self.dbf.cap & DB_CAP_FETCH != 0 && self.dbf.fetch_result.is_some() {
            self.fetch_each(table, columns, batch, &mut f)?;
            return Ok(ReadMode::Fetch);
        }
        if self.sqlite
            && self.dbf.cap & DB_CAP_RAW_QUERY != 0
            && self.dbf.raw_query.is_some()
            && plain_identifier(table)
            && columns.iter().all(|c| plain_identifier(c.as_bytes()))
        {
            self.pages_each(table, columns, batch, &mut f)?;
            return Ok(ReadMode::Pages);
        }
        for row in self.select(table, columns, None)? {
            f(&row);
        }
        Ok(ReadMode::Whole)
    }

    fn fetch_each(
        &mut self,
        table: &[u8],
        columns: &[&str],
        batch: usize,
        f: &mut impl FnMut(&[DbValue]),
    ) -> Result<(), HostError> {
        self.use_table(table)?;
        // SAFETY: null `res`: the driver keeps the result for fetch_result.
        unsafe { self.query(columns, None, std::ptr::null_mut()) }?;
        let fetch = self.dbf.fetch_result.ok_or(HostError::DbQuery)?; // ok: checked by caller
        let mut res: *mut sys::db1_res_t = std::ptr::null_mut();
        let out = loop {
            // SAFETY: the query above left its result in the connection; `res` is
            // this loop's result (the driver frees the previous rows itself).
            if unsafe { fetch(self.con.as_ptr(), &mut res, batch as c_int) } < 0 {
                break Err(HostError::DbQuery);
            }
            if res.is_null() {
                break Ok(());
            }
            // SAFETY: a successful fetch returned a valid result.
            let rows = unsafe { copy_rows(&*res, columns.len()) };
            if rows.is_empty() {
                break Ok(());
            }
            rows.iter().for_each(|r| f(r));
        };
        // SAFETY: null or the last fetched result, copied out already.
        unsafe { self.free(res) };
        out
    }

    /// db_sqlite: `SELECT columns, rowid ... WHERE rowid > last ORDER BY rowid LIMIT
    /// batch`, until a short page. The rowid comes back as text: db_sqlite reports
    /// integer columns as 32-bit values, rowids are 64-bit.
    fn pages_each(
        &mut self,
        table: &[u8],
        columns: &[&str],
        batch: usize,
        f: &mut impl FnMut(&[DbValue]),
    ) -> Result<(), HostError> {
        let raw = self.dbf.raw_query.ok_or(HostError::DbQuery)?; // ok: checked by caller
        let cols = columns.join(",");
        let table = String::from_utf8_lossy(table);
        let mut last: i64 = i64::MIN;
        loop {
            let sql = format!(
                "SELECT {cols},CAST(rowid AS TEXT) FROM {table} WHERE rowid > {last} \
                 ORDER BY rowid LIMIT {batch}"
            );
            let s = borrowed_str(sql.as_bytes());
            let mut res: *mut sys::db1_res_t = std::ptr::null_mut();
            // SAFETY: open connection; `s` valid for the call; the result is freed below.
            let rc = unsafe { raw(self.con.as_ptr(), &s, &mut res) };
            let rows = if rc == 0 && !res.is_null() {
                // SAFETY: a successful query returned a valid result.
                Some(unsafe { copy_rows(&*res, columns.len() + 1) })
            } else {
                None
            };
            // SAFETY: null or the result of the raw query above, copied out already.
            unsafe { self.free(res) };
            for row in rows.as_deref().ok_or(HostError::DbQuery)? {
                let rowid = match row.last() {
                    Some(DbValue::Str(t)) => {
                        std::str::from_utf8(t).ok().and_then(|t| t.parse().ok())
                    }
                    Some(DbValue::Int(i)) => Some(*i),
                    _ => None,
                };
                // Pages must advance, or this loop would not end.
                last = rowid.filter(|&r| r > last).ok_or(HostError::DbQuery)?;
                f(&row[..columns.len()]);
            }
            if rows.map_or(0, |r| r.len()) < batch {
                return Ok(());
            }
        }
    }
}

/// Copies the rows of a result.
///
/// # Safety
/// `res` is a valid result whose rows have at least `ncols` values each (the module
/// returns one value per requested column).
unsafe fn copy_rows(res: &sys::db1_res_t, ncols: usize) -> Vec<Vec<DbValue>> {
    let n = usize::try_from(res.n).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    if res.rows.is_null() {
        return out;
    }
    for i in 0..n {
        // SAFETY: `rows` holds `n` rows (caller's promise).
        let row = unsafe { &*res.rows.add(i) };
        let cols = usize::try_from(row.n).unwrap_or(0).min(ncols);
        let mut vals = Vec::with_capacity(ncols);
        for j in 0..cols {
            // SAFETY: the row holds `row.n` values.
            let v = unsafe { &*row.values.add(j) };
            // SAFETY: `v` is a valid value of this result.
            vals.push(unsafe { value(v) });
        }
        vals.resize(ncols, DbValue::Null);
        out.push(vals);
    }
    out
}

/// # Safety
/// `v` is a value of a live result: strings point to memory of that result.
unsafe fn value(v: &sys::db_val_t) -> DbValue {
    if v.nul != 0 {
        return DbValue::Null;
    }
    // SAFETY: in every arm the union member read is the one `type_` names.
    unsafe {
        match v.type_ {
            sys::DB1_INT => DbValue::Int(i64::from(v.val.int_val)),
            sys::DB1_UINT | sys::DB1_BITMAP => DbValue::Int(i64::from(v.val.uint_val)),
            sys::DB1_BIGINT => DbValue::Int(v.val.ll_val),
            sys::DB1_UBIGINT => DbValue::Int(v.val.ull_val as i64),
            sys::DB1_DOUBLE => DbValue::Double(v.val.double_val),
            sys::DB1_DATETIME => DbValue::Int(v.val.time_val),
            sys::DB1_STRING => {
                let p = v.val.string_val;
                if p.is_null() {
                    DbValue::Null
                } else {
                    DbValue::Str(std::ffi::CStr::from_ptr(p).to_bytes().to_vec())
                }
            }
            sys::DB1_STR | sys::DB1_BLOB => {
                DbValue::Str(crate::host::str::KStr::from_raw(&v.val.str_val).to_vec())
            }
            _ => DbValue::Null,
        }
    }
}

impl Drop for DbConn {
    fn drop(&mut self) {
        if let Some(close) = self.dbf.close {
            // SAFETY: the connection is open and closed once, here.
            unsafe { close(self.con.as_ptr()) };
        }
    }
}
