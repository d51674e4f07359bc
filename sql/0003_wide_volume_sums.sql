-- Volume sums over many rows pass BIGINT's 9.2e18 (two rows of a large volume in one minute
-- do): the bar, session and day volumes are DECIMAL(38,0). Rows keep BIGINT.
ALTER TABLE ohlcv_1m MODIFY Volume DECIMAL(38, 0) NOT NULL;
ALTER TABLE latest_quotes MODIFY Day_Volume DECIMAL(38, 0) NOT NULL;
