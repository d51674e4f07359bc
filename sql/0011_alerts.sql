-- Price alerts (src/alerts.rs): one row per rule, symbol and the closed one-minute bar that
-- raised it. The key makes evaluating the same bars again (a crash, a replay, a recompute)
-- store nothing twice; by_bar finds a recompute's alerts; Id orders them for the dashboard's
-- live feed. BI tools read it (SELECT granted).
CREATE TABLE alerts (
    Id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    Rule        VARCHAR(100)    NOT NULL COMMENT 'the rule''s name in appliance.toml',
    Bank_Name   VARCHAR(64)     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `Timestamp` DATETIME        NOT NULL COMMENT 'UTC minute of the bar that raised it',
    Price       DECIMAL(22, 8)  NOT NULL COMMENT 'the bar''s close',
    Detail      VARCHAR(500)    NOT NULL,
    Fired_At    DATETIME(6)     NOT NULL COMMENT 'UTC, when it was stored',
    PRIMARY KEY (Id),
    UNIQUE KEY one_per_bar (Rule, Bank_Name, `Timestamp`),
    KEY by_bar (Bank_Name, `Timestamp`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
