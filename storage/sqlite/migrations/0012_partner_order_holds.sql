-- A partner order the connector could not turn into FO lines (a size with no SKU, say) is
-- held: kept and listed with the reason, no FO made until a later version can be.
ALTER TABLE partner_orders ADD COLUMN hold_reason TEXT;
CREATE INDEX partner_orders_held ON partner_orders (connector, recorded_at)
    WHERE hold_reason IS NOT NULL;
