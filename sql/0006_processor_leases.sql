-- Which processor consumes a topic into this database (src/store/lease.rs). A row, not a
-- named lock: only the app user can write it (GET_LOCK needs no privilege at all), and it
-- survives a MariaDB restart, so a second processor is refused after one as well.
CREATE TABLE processor_leases (
    Topic       VARCHAR(255)    NOT NULL,
    Owner       CHAR(32)        NOT NULL COMMENT 'random id of the holding processor run',
    Host        VARCHAR(255)    NOT NULL,
    Boot_Id     VARCHAR(64)     NOT NULL COMMENT 'the host''s boot: a pid of an earlier boot is gone',
    Pid_Ns      VARCHAR(64)     NOT NULL COMMENT 'pid namespace: a pid of another one cannot be checked from here',
    Pid         INT UNSIGNED    NOT NULL,
    Pid_Started BIGINT UNSIGNED NOT NULL COMMENT 'process start (clock ticks since boot): a reused pid is not the holder',
    Expires_At  DATETIME(6)     NOT NULL COMMENT 'UTC; renewed every 5 s while the holder runs',
    PRIMARY KEY (Topic)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
