-- Volume sums over many rows pass BIGINT's 9.2e18 (two rows of a large volume in one minute
-- do): the bar, session and day volumes are DECIMAL(38,0). Rows keep BIGINT.
ALTER TABLE ohlcv_1m MODIFY Volume DECIMAL(38, 0) NOT NULL;
ALTER TABLE latest_quotes MODIFY Day_Volume DECIMAL(38, 0) NOT NULL;

-- One row per symbol, locked by each batch that writes the symbol's rows: writers of
-- different partitions holding rows of one symbol recompute its rollups one at a time.
CREATE TABLE IF NOT EXISTS symbol_locks (
    Bank_Name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- What went wrong with a partition itself, recorded with the batch that handled it: records
-- the broker deleted before they were processed, a stored offset past the partition's end
-- (a truncated log), a topic deleted and recreated under the same name.
CREATE TABLE IF NOT EXISTS pipeline_incidents (
    id          BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    happened_at DATETIME(6)   NOT NULL COMMENT 'UTC',
    topic       VARCHAR(249)  NOT NULL,
    `partition` INT           NOT NULL,
    kind        VARCHAR(32)   NOT NULL,
    detail      VARCHAR(1000) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The id of the topic each offset was read from: a topic deleted and created again under the
-- same name has another id, and its offsets start over.
ALTER TABLE pipeline_offsets ADD COLUMN topic_id VARCHAR(32) NULL AFTER next_offset;
