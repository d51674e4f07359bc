-- Writers no longer read back what a batch overlaps (the rollups follow from the table since
-- 0007), so nothing needs the batch's symbols locked first.
DROP TABLE IF EXISTS symbol_locks;
