-- Rollups the processor keeps in the same transaction as the rows they summarise, and the views
-- BI tools read. Every time is UTC; a trading session is a UTC calendar day (exchanges' hours
-- fall inside one UTC day: NSE 03:45–10:00, NYSE 14:30–21:00).

-- One-minute OHLCV bars per symbol, from the rows of stock_data in each minute.
CREATE TABLE IF NOT EXISTS ohlcv_1m (
    Bank_Name   VARCHAR(64)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `Timestamp` DATETIME       NOT NULL COMMENT 'start of the minute, UTC',
    Open        DECIMAL(18, 4) NOT NULL,
    High        DECIMAL(18, 4) NOT NULL,
    Low         DECIMAL(18, 4) NOT NULL,
    Close       DECIMAL(18, 4) NOT NULL,
    Volume      BIGINT         NOT NULL,
    Turnover    DECIMAL(38, 4) NOT NULL COMMENT 'sum of Close x Volume over the minute''s rows',
    Ticks       INT            NOT NULL COMMENT 'rows of stock_data in the minute',
    PRIMARY KEY (Bank_Name, `Timestamp`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Indicators per symbol on the one-minute bars (NULL until enough bars exist):
-- SMA_20/SMA_50 mean close of the last 20/50 bars; EMA_20 exponential (alpha 2/21, seeded with
-- the first close); VWAP the session's Turnover / Volume up to the bar; Volatility_20 the sample
-- standard deviation of the last 20 one-bar log returns.
CREATE TABLE IF NOT EXISTS indicators_1m (
    Bank_Name        VARCHAR(64)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `Timestamp`      DATETIME       NOT NULL COMMENT 'start of the minute, UTC',
    SMA_20           DECIMAL(24, 8) NULL,
    SMA_50           DECIMAL(24, 8) NULL,
    EMA_20           DOUBLE         NOT NULL,
    VWAP             DECIMAL(24, 8) NULL,
    Volatility_20    DOUBLE         NULL,
    Session_Volume   DECIMAL(38, 0) NOT NULL,
    Session_Turnover DECIMAL(38, 4) NOT NULL,
    PRIMARY KEY (Bank_Name, `Timestamp`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The newest row per symbol, with the change against the previous session's last close.
CREATE TABLE IF NOT EXISTS latest_quotes (
    Bank_Name    VARCHAR(64)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    `Timestamp`  DATETIME(6)    NOT NULL COMMENT 'time of the newest row, UTC',
    Price        DECIMAL(18, 4) NOT NULL COMMENT 'Close of the newest row',
    Prev_Close   DECIMAL(18, 4) NULL     COMMENT 'last Close of the previous session',
    Price_Change DECIMAL(18, 4) NULL,
    Change_Pct   DOUBLE         NULL,
    Day_Open     DECIMAL(18, 4) NOT NULL,
    Day_High     DECIMAL(18, 4) NOT NULL,
    Day_Low      DECIMAL(18, 4) NOT NULL,
    Day_Volume   BIGINT         NOT NULL,
    Updated_At   DATETIME(6)    NOT NULL COMMENT 'when the processor committed it, UTC'
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE OR REPLACE VIEW v_latest_price AS
SELECT Bank_Name, `Timestamp`, Price, Prev_Close, Price_Change, Change_Pct, Day_Volume, Updated_At
FROM latest_quotes;

-- One row per symbol and session (UTC day): the day's OHLC, volume, VWAP and bar count.
CREATE OR REPLACE VIEW v_daily_summary AS
SELECT d.Bank_Name,
       d.Trade_Date,
       f.Open,
       d.High,
       d.Low,
       l.Close,
       d.Volume,
       i.VWAP,
       d.Bars
FROM (SELECT Bank_Name,
             DATE(`Timestamp`) AS Trade_Date,
             MIN(`Timestamp`)  AS First_Bar,
             MAX(`Timestamp`)  AS Last_Bar,
             MAX(High)         AS High,
             MIN(Low)          AS Low,
             SUM(Volume)       AS Volume,
             COUNT(*)          AS Bars
      FROM ohlcv_1m
      GROUP BY Bank_Name, DATE(`Timestamp`)) AS d
JOIN ohlcv_1m AS f ON f.Bank_Name = d.Bank_Name AND f.`Timestamp` = d.First_Bar
JOIN ohlcv_1m AS l ON l.Bank_Name = d.Bank_Name AND l.`Timestamp` = d.Last_Bar
JOIN indicators_1m AS i ON i.Bank_Name = d.Bank_Name AND i.`Timestamp` = d.Last_Bar;
