-- A one-minute bar and its indicators are one row of bars_1m: the rollup stage writes each
-- minute once instead of into two tables (on the bench, a third of MariaDB's work per row).
-- ohlcv_1m and indicators_1m stay, as views of it, for the dashboards and BI reports that
-- read them (SMA_20/SMA_50: mean close of the last 20/50 bars; EMA_20: alpha 2/21 seeded with
-- the first close; VWAP: the session's Turnover / Volume up to the bar; Volatility_20: sample
-- standard deviation of the last 20 one-bar log returns; NULL until enough bars exist).
CREATE TABLE IF NOT EXISTS bars_1m (
    Bank_Name        VARCHAR(64)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `Timestamp`      DATETIME       NOT NULL COMMENT 'start of the minute, UTC',
    Open             DECIMAL(22, 8) NOT NULL,
    High             DECIMAL(22, 8) NOT NULL,
    Low              DECIMAL(22, 8) NOT NULL,
    Close            DECIMAL(22, 8) NOT NULL,
    Volume           DECIMAL(38, 8) NOT NULL,
    Turnover         DECIMAL(38, 8) NOT NULL COMMENT 'sum of Close x Volume over the minute''s rows',
    Ticks            INT            NOT NULL COMMENT 'rows of stock_data in the minute',
    SMA_20           DECIMAL(24, 8) NULL,
    SMA_50           DECIMAL(24, 8) NULL,
    EMA_20           DOUBLE         NOT NULL,
    VWAP             DECIMAL(24, 8) NULL,
    Volatility_20    DOUBLE         NULL,
    Session_Volume   DECIMAL(38, 8) NOT NULL,
    Session_Turnover DECIMAL(38, 8) NOT NULL,
    PRIMARY KEY (Bank_Name, `Timestamp`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- IGNORE, IF EXISTS, OR REPLACE: a run stopped half-way (DDL commits as it goes) can run again.
INSERT IGNORE INTO bars_1m (Bank_Name, `Timestamp`, Open, High, Low, Close, Volume, Turnover, Ticks,
                            SMA_20, SMA_50, EMA_20, VWAP, Volatility_20, Session_Volume,
                            Session_Turnover)
SELECT o.Bank_Name, o.`Timestamp`, o.Open, o.High, o.Low, o.Close, o.Volume, o.Turnover, o.Ticks,
       i.SMA_20, i.SMA_50, i.EMA_20, i.VWAP, i.Volatility_20, i.Session_Volume, i.Session_Turnover
FROM ohlcv_1m AS o
JOIN indicators_1m AS i ON i.Bank_Name = o.Bank_Name AND i.`Timestamp` = o.`Timestamp`;

-- A bar without indicators (or the reverse) cannot be carried over: recomputed from there on.
INSERT INTO rollup_pending (Bank_Name, From_Minute)
SELECT Bank_Name, MIN(`Timestamp`)
FROM (SELECT o.Bank_Name, o.`Timestamp` FROM ohlcv_1m AS o
      LEFT JOIN indicators_1m AS i ON i.Bank_Name = o.Bank_Name AND i.`Timestamp` = o.`Timestamp`
      WHERE i.Bank_Name IS NULL
      UNION ALL
      SELECT i.Bank_Name, i.`Timestamp` FROM indicators_1m AS i
      LEFT JOIN ohlcv_1m AS o ON o.Bank_Name = i.Bank_Name AND o.`Timestamp` = i.`Timestamp`
      WHERE o.Bank_Name IS NULL) AS orphans
GROUP BY Bank_Name
ON DUPLICATE KEY UPDATE From_Minute = LEAST(COALESCE(From_Minute, VALUES(From_Minute)),
                                            VALUES(From_Minute));

DROP TABLE IF EXISTS ohlcv_1m, indicators_1m;

-- SQL SECURITY INVOKER: the reader's own grants apply (BI reads bars_1m itself), and the views
-- do not depend on the account that ran the migration.
CREATE OR REPLACE SQL SECURITY INVOKER VIEW ohlcv_1m AS
SELECT Bank_Name, `Timestamp`, Open, High, Low, Close, Volume, Turnover, Ticks
FROM bars_1m;

CREATE OR REPLACE SQL SECURITY INVOKER VIEW indicators_1m AS
SELECT Bank_Name, `Timestamp`, SMA_20, SMA_50, EMA_20, VWAP, Volatility_20, Session_Volume,
       Session_Turnover
FROM bars_1m;

-- One row per symbol and session (UTC day): the day's OHLC, volume, VWAP and bar count.
CREATE OR REPLACE SQL SECURITY INVOKER VIEW v_daily_summary AS
SELECT d.Bank_Name,
       d.Trade_Date,
       f.Open,
       d.High,
       d.Low,
       l.Close,
       d.Volume,
       l.VWAP,
       d.Bars
FROM (SELECT Bank_Name,
             DATE(`Timestamp`) AS Trade_Date,
             MIN(`Timestamp`)  AS First_Bar,
             MAX(`Timestamp`)  AS Last_Bar,
             MAX(High)         AS High,
             MIN(Low)          AS Low,
             SUM(Volume)       AS Volume,
             COUNT(*)          AS Bars
      FROM bars_1m
      GROUP BY Bank_Name, DATE(`Timestamp`)) AS d
JOIN bars_1m AS f ON f.Bank_Name = d.Bank_Name AND f.`Timestamp` = d.First_Bar
JOIN bars_1m AS l ON l.Bank_Name = d.Bank_Name AND l.`Timestamp` = d.Last_Bar;
