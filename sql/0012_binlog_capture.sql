-- How the rollup stage learns of rows other writers commit (src/store/capture.rs): stock_data's
-- triggers (0007), or, on a server whose binary log is in ROW format, the table's row events,
-- read as a replica reads them. Reading the log costs the writers nothing per row; a trigger
-- costs MariaDB ~0.85 µs a row even when it does nothing (a third of a bulk load's own cost).
CREATE TABLE IF NOT EXISTS rollup_capture (
    Id                  TINYINT UNSIGNED NOT NULL COMMENT 'always 1',
    Binlog_File         VARCHAR(255)     NULL COMMENT 'NULL: stock_data''s triggers mark the rows',
    Binlog_Pos          BIGINT UNSIGNED  NULL COMMENT 'the next sweep reads from here',
    Read_File           VARCHAR(255)     NULL COMMENT 'how far the last sweep read: the next one reads it again',
    Read_Pos            BIGINT UNSIGNED  NULL,
    Writers_Skip_Binlog BOOLEAN          NOT NULL DEFAULT FALSE
                        COMMENT 'the log is the appliance''s own: tickpipe''s sessions leave it (they mark their rows themselves)',
    PRIMARY KEY (Id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT IGNORE INTO rollup_capture (Id) VALUES (1);
