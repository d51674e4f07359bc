//! The rollups, derived from `stock_data` whoever wrote it: per symbol, `bars_1m` (one-minute
//! bars with their indicators) and `latest_quotes` recomputed from the stored rows from the
//! earliest stale minute on. A trigger on `stock_data` records that minute in `rollup_pending` inside the
//! writer's own transaction (migration 0007); [`Store::refresh_rollups`] takes it and
//! recomputes in transactions of its own, so writers only move rows. Recomputing from stored
//! rows (instead of folding new rows into running state) keeps the rollups exact across
//! replays, crashes, late backfills and writers other than tickpipe.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{Conn, Row, Value};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::Store;
use super::alerts::AlertJudge;
use super::batch::prepared_shapes;
use super::bulk::{self, LOAD_PACKET, Statement, column, datetime, decimal, placeholders, text};
use super::error::{StoreError, timed};
use super::infile;
use super::lease::{self, Member, Unit};
use crate::alerts::AlertRule;
use crate::rollup::{self, Bar, IndicatorState, Indicators, LOOKBACK, VolumeSum};

/// Bars per load of `bars_1m` (~220 bytes each in the file).
const BARS_PER_LOAD: usize = 8192;
/// Bars per upsert statement when a load is refused (16 placeholders each, far under the
/// 65,535 limit).
const BARS_PER_STATEMENT: usize = 2048;
/// Rows read per page when recomputing a symbol's rollups.
const ROWS_PER_PAGE: usize = 4096;

type Result<T> = std::result::Result<T, StoreError>;

impl Store {
    /// Symbols whose rollups are stale (or were being recomputed when a run stopped), the
    /// longest-stale first; at most `limit`.
    pub async fn stale_symbols(&self, limit: usize) -> Result<Vec<String>> {
        let symbols = timed(
            "reading rollup_pending",
            self.statement_timeout,
            sqlx::query_scalar(
                "SELECT Bank_Name FROM rollup_pending \
                 ORDER BY LEAST(COALESCE(From_Minute, Working_From), \
                                COALESCE(Working_From, From_Minute)) LIMIT ?",
            )
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool),
        )
        .await?;
        Ok(symbols)
    }

    /// Recomputes `symbol`'s stale rollups. First, briefly, it takes the stale range (writers
    /// who touch the symbol meanwhile mark it stale again); then it recomputes from reads that
    /// see every row committed before, and lets go of the range it took. A run that
    /// stops between the two leaves the range taken, and the next one takes it again. Only the
    /// holder of the rollup stage ([`Unit::Rollups`]) takes ranges and commits recomputes. A
    /// range a writer holds locked right now (its transaction is open) is skipped: `Skipped`,
    /// to be taken later. `rules`' alerts at the recomputed bars are stored in the same
    /// transaction.
    pub async fn refresh_rollups(
        &self,
        symbol: &str,
        member: &Member,
        rules: &[AlertRule],
    ) -> Result<Refreshed> {
        let deadline = self.statement_timeout;
        // Both transactions on one bulk connection: the bars go in by LOAD DATA.
        let mut conn = self.bulk.take(deadline).await?;
        let result = async {
            let from = match self.take_range(&mut conn, symbol, member).await? {
                Ok(from) => from,
                Err(nothing_taken) => return Ok(nothing_taken),
            };
            self.recompute(&mut conn, symbol, from, member, rules).await
        }
        .await;
        self.bulk.finish(conn, &result);
        result
    }

    /// Takes `symbol`'s stale range in a short transaction of its own: from where to recompute,
    /// or, when there is nothing to take, why (done by now, or held by a writer's open
    /// transaction).
    async fn take_range(
        &self,
        conn: &mut Conn,
        symbol: &str,
        member: &Member,
    ) -> Result<std::result::Result<NaiveDateTime, Refreshed>> {
        const WHAT: &str = "taking a stale range";
        let deadline = self.statement_timeout;
        bulk::exec(conn, WHAT, deadline, "START TRANSACTION", Vec::new()).await?;
        // Only the rollup stage's holder takes ranges: one that lost it (paused and taken
        // over) must not move a range the new holder is recomputing.
        lease::check(conn, member, [Unit::Rollups], deadline).await?;
        let taken: Vec<Row> = bulk::select(
            conn,
            WHAT,
            deadline,
            "SELECT From_Minute, Working_From FROM rollup_pending \
             WHERE Bank_Name = ? FOR UPDATE SKIP LOCKED",
            vec![text(symbol)],
        )
        .await?;
        let from = match taken.into_iter().next() {
            Some(mut row) => {
                let stale: Option<NaiveDateTime> = column(&mut row, 0, WHAT)?;
                let working: Option<NaiveDateTime> = column(&mut row, 1, WHAT)?;
                stale
                    .into_iter()
                    .chain(working)
                    .min()
                    .ok_or(Refreshed::Done)
            }
            None => {
                // Gone (done by now), or locked by a writer whose transaction is open.
                let sql = "SELECT 1 FROM rollup_pending WHERE Bank_Name = ?";
                let present: Vec<Row> =
                    bulk::select(conn, WHAT, deadline, sql, vec![text(symbol)]).await?;
                Err(if present.is_empty() {
                    Refreshed::Done
                } else {
                    Refreshed::Skipped
                })
            }
        };
        let Ok(from) = from else {
            bulk::exec(conn, WHAT, deadline, "ROLLBACK", Vec::new()).await?;
            return Ok(from);
        };
        bulk::exec(
            conn,
            WHAT,
            deadline,
            "UPDATE rollup_pending SET Working_From = ?, From_Minute = NULL \
             WHERE Bank_Name = ?",
            vec![datetime(from.and_utc()), text(symbol)],
        )
        .await?;
        bulk::exec(conn, WHAT, deadline, "COMMIT", Vec::new()).await?;
        Ok(Ok(from))
    }

    /// Recomputes `symbol`'s rollups from `from` (a range [`Self::take_range`] took) and lets
    /// go of the range, in one transaction.
    async fn recompute(
        &self,
        conn: &mut Conn,
        symbol: &str,
        from: NaiveDateTime,
        member: &Member,
        rules: &[AlertRule],
    ) -> Result<Refreshed> {
        let deadline = self.statement_timeout;
        // A new transaction, READ COMMITTED: each read sees every row committed before it,
        // so every row committed before the range was taken (a row committed later marks the
        // range stale again). No gap locks: two symbols recomputed at once, each clearing its
        // bars from a minute on, never lock each other's gaps (REPEATABLE READ deadlocked them
        // on the gap past the newest bar).
        for begin in [
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "START TRANSACTION",
        ] {
            bulk::exec(conn, "starting a transaction", deadline, begin, Vec::new()).await?;
        }
        lease::check(conn, member, [Unit::Rollups], deadline).await?;
        let first_bar = rollup::minute(from.and_utc());
        let mut alerts = AlertJudge::start(conn, symbol, first_bar, rules, deadline).await?;
        self.refresh(conn, symbol, from.and_utc(), alerts.as_mut())
            .await?;
        if let Some(alerts) = alerts {
            alerts.store(conn, symbol, deadline).await?;
        }
        // Let go of the range taken (not one taken since: a crashed run's is taken again), and
        // of the row when nothing is stale. A writer's open transaction may hold the row past
        // the wait: the recompute commits anyway, and the range is simply taken again later.
        let wait = "SET SESSION innodb_lock_wait_timeout = 5";
        bulk::exec(conn, "releasing a stale range", deadline, wait, Vec::new()).await?;
        let releases = [
            (
                "UPDATE rollup_pending SET Working_From = NULL \
                 WHERE Bank_Name = ? AND Working_From = ?",
                vec![text(symbol), datetime(from.and_utc())],
            ),
            (
                "DELETE FROM rollup_pending \
                 WHERE Bank_Name = ? AND From_Minute IS NULL AND Working_From IS NULL",
                vec![text(symbol)],
            ),
        ];
        for (sql, params) in releases {
            let released = bulk::exec(conn, "releasing a stale range", deadline, sql, params).await;
            if let Err(e) = released {
                // Only a lock wait leaves the recompute to commit, and only when the server
                // undid the one statement (with innodb_rollback_on_timeout it undid them all).
                if e.number() != Some(LOCK_WAIT_TIMEOUT)
                    || rolls_back_on_timeout(conn, deadline).await?
                {
                    return Err(e);
                }
            }
        }
        let wait = "SET SESSION innodb_lock_wait_timeout = DEFAULT";
        bulk::exec(conn, "releasing a stale range", deadline, wait, Vec::new()).await?;
        bulk::exec(conn, "committing rollups", deadline, "COMMIT", Vec::new()).await?;
        Ok(Refreshed::Done)
    }
}

/// ER_LOCK_WAIT_TIMEOUT.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// Whether the server rolls a whole transaction back when a lock wait times out.
async fn rolls_back_on_timeout(conn: &mut Conn, deadline: Duration) -> Result<bool> {
    const WHAT: &str = "reading innodb_rollback_on_timeout";
    let sql = "SELECT @@innodb_rollback_on_timeout";
    let rows: Vec<Row> = bulk::select(conn, WHAT, deadline, sql, Vec::new()).await?;
    match rows.into_iter().next() {
        Some(mut row) => Ok(column::<i64>(&mut row, 0, WHAT)? != 0),
        None => Ok(true),
    }
}

/// What became of a stale range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// Recomputed (or nothing was stale any more).
    Done,
    /// A writer's open transaction holds it: try again later.
    Skipped,
}

impl Store {
    /// Recomputes `symbol`'s bars and indicators from the minute holding `since` to its newest
    /// row, and its latest quote; bars from there whose rows are gone (deleted) go too. Rows
    /// are read a page at a time, so a late backfill in front of a long history holds one page
    /// in memory, not the history.
    ///
    /// A figure too large to represent stops the symbol's rollups at that bar (logged; the rows
    /// themselves are stored): the bars before it stay exact. Each bar written is handed to
    /// `alerts` too.
    async fn refresh(
        &self,
        conn: &mut Conn,
        symbol: &str,
        since: DateTime<Utc>,
        alerts: Option<&mut AlertJudge>,
    ) -> Result<()> {
        let deadline = self.statement_timeout;
        let from = rollup::minute(since);
        bulk::exec(
            conn,
            "clearing stale bars",
            deadline,
            "DELETE FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` >= ?",
            vec![text(symbol), datetime(from)],
        )
        .await?;
        let mut state = resume_state(conn, symbol, from, deadline).await?;
        let mut out = BarWriter {
            store: self,
            symbol,
            bars: Vec::new(),
            alerts,
        };
        // The bar still open at the end of a page (its minute may go on in the next one).
        let mut open: Option<Bar> = None;
        let mut newest: Option<(DateTime<Utc>, Decimal)> = None;
        let mut failed = None;
        'pages: loop {
            let after = newest.map_or(Value::NULL, |(at, _)| datetime(at));
            let page: Vec<Row> = bulk::select(
                conn,
                "reading rows for the rollups",
                deadline,
                "SELECT `Timestamp`, Open, High, Low, Close, Volume FROM stock_data \
                 WHERE Bank_Name = ? AND `Timestamp` >= ? AND (? IS NULL OR `Timestamp` > ?) \
                 ORDER BY `Timestamp` LIMIT ?",
                vec![
                    text(symbol),
                    datetime(from),
                    after.clone(),
                    after,
                    Value::Int(ROWS_PER_PAGE as i64),
                ],
            )
            .await?;
            let full = page.len() == ROWS_PER_PAGE;
            for mut r in page {
                const WHAT: &str = "reading rows for the rollups";
                let at = column::<NaiveDateTime>(&mut r, 0, WHAT)?.and_utc();
                let close: Decimal = column(&mut r, 4, WHAT)?;
                newest = Some((at, close));
                let prices = [
                    column(&mut r, 1, WHAT)?,
                    column(&mut r, 2, WHAT)?,
                    column(&mut r, 3, WHAT)?,
                    close,
                ];
                let row = match Bar::from_row(at, prices, column(&mut r, 5, WHAT)?) {
                    Ok(row) => Bar {
                        start: rollup::minute(at),
                        ..row
                    },
                    Err(e) => {
                        failed = Some((at, e));
                        break 'pages;
                    }
                };
                match open.as_mut() {
                    Some(bar) if bar.start == row.start => {
                        if let Err(e) = bar.absorb(&row) {
                            failed = Some((at, e));
                            break 'pages;
                        }
                    }
                    _ => {
                        if let Some(done) = open.replace(row) {
                            match state.next(&done) {
                                Ok(indicators) => out.push(conn, done, indicators).await?,
                                Err(e) => {
                                    failed = Some((done.start, e));
                                    break 'pages;
                                }
                            }
                        }
                    }
                }
            }
            if !full {
                break;
            }
        }
        if failed.is_none()
            && let Some(done) = open
        {
            match state.next(&done) {
                Ok(indicators) => out.push(conn, done, indicators).await?,
                Err(e) => failed = Some((done.start, e)),
            }
        }
        out.flush(conn).await?;
        if let Some((at, e)) = failed {
            tracing::error!(
                symbol,
                "rollups stop at {at}: {e}; the rows are stored, bars and indicators from there \
                 on are not"
            );
            return Ok(());
        }
        // No row from `from` on (they were deleted): the quote is the newest row before, if any.
        let newest = match newest {
            Some(newest) => Some(newest),
            None => {
                let newest: Vec<Row> = bulk::select(
                    conn,
                    "reading the newest row",
                    deadline,
                    "SELECT `Timestamp`, Close FROM stock_data WHERE Bank_Name = ? \
                     ORDER BY `Timestamp` DESC LIMIT 1",
                    vec![text(symbol)],
                )
                .await?;
                match newest.into_iter().next() {
                    None => None,
                    Some(mut r) => {
                        const WHAT: &str = "reading the newest row";
                        let at = column::<NaiveDateTime>(&mut r, 0, WHAT)?.and_utc();
                        Some((at, column(&mut r, 1, WHAT)?))
                    }
                }
            }
        };
        match newest {
            Some((at, price)) => store_latest_quote(conn, symbol, at, price, deadline).await,
            None => {
                bulk::exec(
                    conn,
                    "removing a quote without rows",
                    deadline,
                    "DELETE FROM latest_quotes WHERE Bank_Name = ?",
                    vec![text(symbol)],
                )
                .await?;
                Ok(())
            }
        }
    }
}

/// The columns of `bars_1m` a load file of bars holds, in its order ([`bar_file`]).
const BAR_COLUMNS: &str = "Bank_Name, `Timestamp`, Open, High, Low, Close, Volume, Turnover, \
     Ticks, SMA_20, SMA_50, EMA_20, VWAP, Volatility_20, Session_Volume, Session_Turnover";

/// Bars and their indicators on their way to `bars_1m`: loaded [`BARS_PER_LOAD`] at a time,
/// or, when MySQL refuses the load (or a value in it), upserted [`BARS_PER_STATEMENT`] at a
/// time; and to the alerts' judge.
struct BarWriter<'s> {
    store: &'s Store,
    symbol: &'s str,
    bars: Vec<(Bar, Indicators)>,
    alerts: Option<&'s mut AlertJudge>,
}

impl BarWriter<'_> {
    async fn push(&mut self, conn: &mut Conn, bar: Bar, indicators: Indicators) -> Result<()> {
        if let Some(alerts) = self.alerts.as_mut() {
            alerts.bar(bar.start, bar.close, bar.volume);
        }
        self.bars.push((bar, indicators));
        if self.bars.len() >= BARS_PER_LOAD {
            self.flush(conn).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut Conn) -> Result<()> {
        let bars = std::mem::take(&mut self.bars);
        if bars.is_empty() {
            return Ok(());
        }
        let store = self.store;
        let deadline = store.statement_timeout;
        let load_deadline = deadline * (1 + bars.len() / BARS_PER_STATEMENT) as u32;
        let sql = infile::statement("bars_1m", BAR_COLUMNS);
        let file = bar_file(self.symbol, &bars);
        let packet = store.max_statement_bytes.min(LOAD_PACKET);
        let what = "loading bars_1m";
        let loaded = store
            .bulk
            .load_or_undo(conn, what, deadline, load_deadline, &sql, file, packet)
            .await?;
        if !loaded {
            for chunk in bars.chunks(BARS_PER_STATEMENT) {
                for run in prepared_shapes(chunk) {
                    let Statement { sql, params } = upsert_bars(self.symbol, run);
                    bulk::exec(
                        conn,
                        "upserting bars_1m",
                        store.statement_timeout,
                        &sql,
                        params,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// `bars` of `symbol` as a load file of [`BAR_COLUMNS`] (public for the benches): decimals
/// as MySQL prints them, sums of volumes too (DECIMAL(38,8) holds more digits than a
/// `Decimal`), `\N` for NULL.
pub fn bar_file(symbol: &str, bars: &[(Bar, Indicators)]) -> Vec<u8> {
    fn decimal_field(file: &mut Vec<u8>, value: Option<Decimal>) {
        file.push(b'\t');
        match value {
            Some(value) => infile::write_decimal_field(file, value),
            None => file.extend_from_slice(b"\\N"),
        }
    }
    fn double_field(file: &mut Vec<u8>, value: Option<f64>) {
        file.push(b'\t');
        match value {
            // The shortest text that reads back as the same double (as MySQL's own is).
            Some(value) if value.is_finite() => {
                file.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes())
            }
            // MySQL warns, and the bars go in as INSERTs, which refuse it.
            Some(value) => write!(file, "{value}").expect("writing to memory"),
            None => file.extend_from_slice(b"\\N"),
        }
    }
    let mut file = Vec::with_capacity(bars.len() * 192);
    for (b, i) in bars {
        infile::write_text_field(&mut file, symbol);
        file.push(b'\t');
        infile::write_datetime(&mut file, b.start);
        for price in [b.open, b.high, b.low, b.close] {
            decimal_field(&mut file, Some(price));
        }
        file.push(b'\t');
        b.volume.write_text(&mut file);
        decimal_field(&mut file, Some(b.turnover));
        file.push(b'\t');
        file.extend_from_slice(
            itoa::Buffer::new()
                .format(b.ticks.min(i32::MAX as i64))
                .as_bytes(),
        );
        decimal_field(&mut file, i.sma_20);
        decimal_field(&mut file, i.sma_50);
        double_field(&mut file, Some(i.ema_20));
        decimal_field(&mut file, i.vwap);
        double_field(&mut file, i.volatility_20);
        file.push(b'\t');
        i.session_volume.write_text(&mut file);
        decimal_field(&mut file, Some(i.session_turnover));
        file.push(b'\n');
    }
    file
}

/// The multi-row upsert of `bars` of `symbol` into `bars_1m` (when a load is refused).
fn upsert_bars(symbol: &str, bars: &[(Bar, Indicators)]) -> Statement {
    let mut params = Vec::with_capacity(bars.len() * 16);
    for (b, i) in bars {
        params.extend([
            text(symbol),
            datetime(b.start),
            decimal(b.open),
            decimal(b.high),
            decimal(b.low),
            decimal(b.close),
            text(&b.volume.to_string()),
            decimal(b.turnover),
            Value::Int(b.ticks.min(i32::MAX as i64)),
            i.sma_20.map_or(Value::NULL, decimal),
            i.sma_50.map_or(Value::NULL, decimal),
            Value::Double(i.ema_20),
            i.vwap.map_or(Value::NULL, decimal),
            i.volatility_20.map_or(Value::NULL, Value::Double),
            text(&i.session_volume.to_string()),
            decimal(i.session_turnover),
        ]);
    }
    let sql = format!(
        "INSERT INTO bars_1m ({BAR_COLUMNS}) VALUES {} \
         ON DUPLICATE KEY UPDATE Open = VALUES(Open), High = VALUES(High), \
         Low = VALUES(Low), Close = VALUES(Close), Volume = VALUES(Volume), \
         Turnover = VALUES(Turnover), Ticks = VALUES(Ticks), SMA_20 = VALUES(SMA_20), \
         SMA_50 = VALUES(SMA_50), EMA_20 = VALUES(EMA_20), VWAP = VALUES(VWAP), \
         Volatility_20 = VALUES(Volatility_20), Session_Volume = VALUES(Session_Volume), \
         Session_Turnover = VALUES(Session_Turnover)",
        placeholders(bars.len(), 16)
    );
    Statement { sql, params }
}

/// Indicator state after the bars before `from`, as stored.
async fn resume_state(
    conn: &mut Conn,
    symbol: &str,
    from: DateTime<Utc>,
    deadline: Duration,
) -> Result<IndicatorState> {
    const WHAT: &str = "reading the bars before a batch";
    let closes: Vec<Row> = bulk::select(
        conn,
        WHAT,
        deadline,
        "SELECT Close FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` < ? \
         ORDER BY `Timestamp` DESC LIMIT ?",
        vec![text(symbol), datetime(from), Value::Int(LOOKBACK as i64)],
    )
    .await?;
    let last: Vec<Row> = bulk::select(
        conn,
        WHAT,
        deadline,
        "SELECT `Timestamp`, EMA_20, CAST(Session_Volume AS CHAR), Session_Turnover \
         FROM bars_1m \
         WHERE Bank_Name = ? AND `Timestamp` < ? ORDER BY `Timestamp` DESC LIMIT 1",
        vec![text(symbol), datetime(from)],
    )
    .await?;
    let closes = closes
        .into_iter()
        .rev()
        .map(|mut r| column::<Decimal>(&mut r, 0, WHAT))
        .collect::<Result<Vec<_>>>()?;
    let last = match last.into_iter().next() {
        None => None,
        Some(mut r) => {
            let volume: String = column(&mut r, 2, WHAT)?;
            Some((
                column::<NaiveDateTime>(&mut r, 0, WHAT)?.and_utc(),
                column(&mut r, 1, WHAT)?,
                VolumeSum::parse(&volume).map_err(|message| StoreError::Data {
                    what: "reading a session's volume",
                    number: 0,
                    message,
                })?,
                column(&mut r, 3, WHAT)?,
            ))
        }
    };
    Ok(IndicatorState::resume(closes, last))
}

/// The symbol's latest quote: its newest row, and the change against the last close of the
/// session before the newest row's.
async fn store_latest_quote(
    conn: &mut Conn,
    symbol: &str,
    newest_at: DateTime<Utc>,
    price: Decimal,
    deadline: Duration,
) -> Result<()> {
    const WHAT: &str = "reading the session for latest_quotes";
    let day = datetime(rollup::session_start(newest_at));
    let today: Vec<Row> = bulk::select(
        conn,
        WHAT,
        deadline,
        "SELECT (SELECT Open FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` >= ? \
                 ORDER BY `Timestamp` LIMIT 1), \
                MAX(High), MIN(Low), CAST(SUM(Volume) AS CHAR), \
                (SELECT Close FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` < ? \
                 ORDER BY `Timestamp` DESC LIMIT 1) \
         FROM bars_1m WHERE Bank_Name = ? AND `Timestamp` >= ?",
        vec![
            text(symbol),
            day.clone(),
            text(symbol),
            day.clone(),
            text(symbol),
            day,
        ],
    )
    .await?;
    let Some(mut today) = today.into_iter().next() else {
        return Err(StoreError::Data {
            what: WHAT,
            number: 0,
            message: "no row".into(),
        });
    };
    let prev_close: Option<Decimal> = column(&mut today, 4, WHAT)?;
    // Prices of at most 10^14 cannot overflow here; checked all the same.
    let change = prev_close.and_then(|p| price.checked_sub(p));
    let change_pct = prev_close
        .zip(change)
        .filter(|(p, _)| !p.is_zero())
        .and_then(|(p, c)| {
            c.checked_mul(Decimal::ONE_HUNDRED)?
                .checked_div(p)?
                .to_f64()
        });
    let params = vec![
        text(symbol),
        datetime(newest_at),
        decimal(price),
        prev_close.map_or(Value::NULL, decimal),
        change.map_or(Value::NULL, decimal),
        change_pct.map_or(Value::NULL, Value::Double),
        decimal(column(&mut today, 0, WHAT)?),
        decimal(column(&mut today, 1, WHAT)?),
        decimal(column(&mut today, 2, WHAT)?),
        text(&column::<String>(&mut today, 3, WHAT)?),
    ];
    bulk::exec(
        conn,
        "upserting latest_quotes",
        deadline,
        "INSERT INTO latest_quotes (Bank_Name, `Timestamp`, Price, Prev_Close, Price_Change, \
         Change_Pct, Day_Open, Day_High, Day_Low, Day_Volume, Updated_At) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE `Timestamp` = VALUES(`Timestamp`), Price = VALUES(Price), \
         Prev_Close = VALUES(Prev_Close), Price_Change = VALUES(Price_Change), \
         Change_Pct = VALUES(Change_Pct), Day_Open = VALUES(Day_Open), \
         Day_High = VALUES(Day_High), Day_Low = VALUES(Day_Low), \
         Day_Volume = VALUES(Day_Volume), Updated_At = VALUES(Updated_At)",
        params,
    )
    .await?;
    Ok(())
}
