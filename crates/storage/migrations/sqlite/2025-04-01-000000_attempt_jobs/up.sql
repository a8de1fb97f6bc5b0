-- The delivery job each attempt made (DeliveryJob JSON), so a delivery can be resent or replayed
-- later. Private: the attempts API never returns it. Rows written before this column stay NULL.
ALTER TABLE attempts ADD COLUMN job TEXT NULL;
