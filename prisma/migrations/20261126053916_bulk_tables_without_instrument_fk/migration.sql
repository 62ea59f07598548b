-- DropForeignKey
ALTER TABLE "bars" DROP CONSTRAINT "bars_instrument_id_fkey";

-- DropForeignKey
ALTER TABLE "market_states" DROP CONSTRAINT "market_states_instrument_id_fkey";

-- DropForeignKey
ALTER TABLE "regime_labels" DROP CONSTRAINT "regime_labels_instrument_id_fkey";

-- DropForeignKey
ALTER TABLE "true_regimes" DROP CONSTRAINT "true_regimes_instrument_id_fkey";

-- DropIndex
DROP INDEX "bars_ts_idx";

