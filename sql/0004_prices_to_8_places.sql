-- Prices to 8 decimal places: equity feeds print 6 (Yahoo: 39.455002), crypto feeds 8. Every
-- column holding a price, or a sum of prices times volumes, widens in place; no row is lost
-- (a 4-place value is the same number with 8).
ALTER TABLE stock_data
    MODIFY Open  DECIMAL(22, 8) NOT NULL,
    MODIFY High  DECIMAL(22, 8) NOT NULL,
    MODIFY Low   DECIMAL(22, 8) NOT NULL,
    MODIFY Close DECIMAL(22, 8) NOT NULL;

ALTER TABLE ohlcv_1m
    MODIFY Open     DECIMAL(22, 8) NOT NULL,
    MODIFY High     DECIMAL(22, 8) NOT NULL,
    MODIFY Low      DECIMAL(22, 8) NOT NULL,
    MODIFY Close    DECIMAL(22, 8) NOT NULL,
    MODIFY Turnover DECIMAL(38, 8) NOT NULL COMMENT 'sum of Close x Volume over the minute''s rows';

ALTER TABLE indicators_1m
    MODIFY Session_Turnover DECIMAL(38, 8) NOT NULL;

ALTER TABLE latest_quotes
    MODIFY Price        DECIMAL(22, 8) NOT NULL COMMENT 'Close of the newest row',
    MODIFY Prev_Close   DECIMAL(22, 8) NULL     COMMENT 'last Close of the previous session',
    MODIFY Price_Change DECIMAL(22, 8) NULL,
    MODIFY Day_Open     DECIMAL(22, 8) NOT NULL,
    MODIFY Day_High     DECIMAL(22, 8) NOT NULL,
    MODIFY Day_Low      DECIMAL(22, 8) NOT NULL;
