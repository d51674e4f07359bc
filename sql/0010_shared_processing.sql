-- Several processors share a pipeline's work (src/store/lease.rs): each partition of its topics
-- and its rollup stage is a unit that one live processor holds at a time. Replaces the one
-- claim per topic of 0006. Only the app user may write these tables; the BI user cannot read
-- them.
DROP TABLE IF EXISTS processor_leases;

-- The processors of a pipeline (named by its ticks topic) that are alive: each renews its row,
-- and the partitions are shared out among the live ones.
CREATE TABLE processors (
    Owner       CHAR(32)        NOT NULL COMMENT 'random id of the processor run',
    Pipeline    VARCHAR(255)    NOT NULL COMMENT 'the ticks topic',
    Role        ENUM('shared', 'all', 'rollups') NOT NULL
                COMMENT 'shared: takes its share of the partitions; all: every unit or none; rollups: the rollup stage only',
    Host        VARCHAR(255)    NOT NULL,
    Boot_Id     VARCHAR(64)     NOT NULL COMMENT 'the host''s boot: a pid of an earlier boot is gone',
    Pid_Ns      VARCHAR(64)     NOT NULL COMMENT 'pid namespace: a pid of another one cannot be checked from here',
    Pid         INT UNSIGNED    NOT NULL,
    Pid_Started BIGINT UNSIGNED NOT NULL COMMENT 'process start (clock ticks since boot): a reused pid is not the holder',
    Expires_At  DATETIME(6)     NOT NULL COMMENT 'UTC; renewed every second while the processor runs',
    PRIMARY KEY (Owner),
    KEY (Pipeline)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Which processor holds each unit of a pipeline's work: '<topic>:<partition>' (Kafka topic names
-- have no ':') or 'rollups'. A unit whose owner is not a live processor is free.
CREATE TABLE processor_leases (
    Pipeline    VARCHAR(255)    NOT NULL,
    Unit        VARCHAR(300)    NOT NULL,
    Owner       CHAR(32)        NOT NULL,
    PRIMARY KEY (Pipeline, Unit)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
