-- The rollups follow stock_data, whoever writes it (tickpipe's processor, a Spark or JDBC job,
-- a bulk LOAD DATA, a person with a SQL prompt): a trigger on each change records the earliest
-- minute of the symbol whose bars are stale, in the writer's own transaction, and the rollup
-- stage recomputes from there in transactions of its own (src/store/rollups.rs). The writers'
-- transactions only move rows. tickpipe's own sessions set @tickpipe_marks_rollups and mark a
-- batch's symbols once each instead of once per row (the trigger then does nothing).
--
-- From_Minute: stale since (NULL: nothing new since the rollup stage took the row's range).
-- Working_From: the range the rollup stage has taken and not finished (a crash leaves it, and
-- the next round takes it again).
CREATE TABLE IF NOT EXISTS rollup_pending (
    -- Compared as stock_data compares it: byte for byte (AAPL and aapl are two symbols).
    Bank_Name    VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    From_Minute  DATETIME    NULL,
    Working_From DATETIME    NULL,
    PRIMARY KEY (Bank_Name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TRIGGER IF NOT EXISTS stock_data_marks_inserts AFTER INSERT ON stock_data FOR EACH ROW
IF @tickpipe_marks_rollups IS NULL THEN
    INSERT INTO rollup_pending (Bank_Name, From_Minute)
    VALUES (NEW.Bank_Name, DATE_FORMAT(NEW.`Timestamp`, '%Y-%m-%d %H:%i:00'))
    ON DUPLICATE KEY UPDATE From_Minute = LEAST(COALESCE(From_Minute, VALUES(From_Minute)),
                                                VALUES(From_Minute));
END IF;

CREATE TRIGGER IF NOT EXISTS stock_data_marks_updates AFTER UPDATE ON stock_data FOR EACH ROW
IF @tickpipe_marks_rollups IS NULL THEN
    INSERT INTO rollup_pending (Bank_Name, From_Minute)
    VALUES (NEW.Bank_Name, DATE_FORMAT(NEW.`Timestamp`, '%Y-%m-%d %H:%i:00'))
    ON DUPLICATE KEY UPDATE From_Minute = LEAST(COALESCE(From_Minute, VALUES(From_Minute)),
                                                VALUES(From_Minute));
    INSERT INTO rollup_pending (Bank_Name, From_Minute)
    VALUES (OLD.Bank_Name, DATE_FORMAT(OLD.`Timestamp`, '%Y-%m-%d %H:%i:00'))
    ON DUPLICATE KEY UPDATE From_Minute = LEAST(COALESCE(From_Minute, VALUES(From_Minute)),
                                                VALUES(From_Minute));
END IF;

CREATE TRIGGER IF NOT EXISTS stock_data_marks_deletes AFTER DELETE ON stock_data FOR EACH ROW
IF @tickpipe_marks_rollups IS NULL THEN
    INSERT INTO rollup_pending (Bank_Name, From_Minute)
    VALUES (OLD.Bank_Name, DATE_FORMAT(OLD.`Timestamp`, '%Y-%m-%d %H:%i:00'))
    ON DUPLICATE KEY UPDATE From_Minute = LEAST(COALESCE(From_Minute, VALUES(From_Minute)),
                                                VALUES(From_Minute));
END IF;

-- Rows stored before this migration have their rollups already. TRUNCATE fires no trigger:
-- after truncating stock_data, truncate the rollup tables too.
