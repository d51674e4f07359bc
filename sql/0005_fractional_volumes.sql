-- Volumes to 8 decimal places: crypto feeds (Binance klines) trade fractions of a coin
-- (35.92724 BTC in a minute). A row's volume becomes DECIMAL(28,8) (20 integer digits: every
-- BIGINT still fits) and the sums over rows DECIMAL(38,8); widened in place, no row lost (a
-- whole volume is the same number with 8 places).
ALTER TABLE stock_data MODIFY Volume DECIMAL(28, 8) NOT NULL;
ALTER TABLE ohlcv_1m MODIFY Volume DECIMAL(38, 8) NOT NULL;
ALTER TABLE indicators_1m MODIFY Session_Volume DECIMAL(38, 8) NOT NULL;
ALTER TABLE latest_quotes MODIFY Day_Volume DECIMAL(38, 8) NOT NULL;
