-- The seed's table, widened for real data: prices DECIMAL(18,4), volumes BIGINT (daily
-- volumes pass 1e9). `Timestamp` is UTC. utf8mb4 throughout (BI connectors break on utf8mb3).
-- Keys compare byte for byte (utf8mb4_bin): `HDFC` and `hdfc` are different symbols, as they
-- are different Kafka keys, so a replay can never merge two of them.
CREATE TABLE IF NOT EXISTS stock_data (
    `Timestamp` DATETIME(6)    NOT NULL COMMENT 'UTC',
    Bank_Name   VARCHAR(64)    CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    Open        DECIMAL(18, 4) NOT NULL,
    High        DECIMAL(18, 4) NOT NULL,
    Low         DECIMAL(18, 4) NOT NULL,
    Close       DECIMAL(18, 4) NOT NULL,
    Volume      BIGINT         NOT NULL,
    PRIMARY KEY (Bank_Name, `Timestamp`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Everything the pipeline refused, once per source (`file:line` or `topic/partition/offset`).
CREATE TABLE IF NOT EXISTS rejected_ticks (
    id          BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    source      VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    stage       VARCHAR(16)   NOT NULL COMMENT 'ingest or process',
    reason      VARCHAR(1000) NOT NULL,
    raw         MEDIUMTEXT    NOT NULL,
    rejected_at DATETIME(6)   NOT NULL COMMENT 'UTC',
    UNIQUE KEY uq_rejected_source (source)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The next Kafka offset to read per partition, committed in the same transaction as the rows
-- it covers: this is what makes delivery into MySQL exactly once.
CREATE TABLE IF NOT EXISTS pipeline_offsets (
    topic       VARCHAR(249) NOT NULL,
    `partition` INT          NOT NULL,
    next_offset BIGINT       NOT NULL,
    updated_at  DATETIME(6)  NOT NULL COMMENT 'UTC',
    PRIMARY KEY (topic, `partition`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
