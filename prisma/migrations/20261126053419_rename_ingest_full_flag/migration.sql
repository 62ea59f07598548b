-- AlterTable
ALTER TABLE "ingest_runs" DROP COLUMN "full",
ADD COLUMN     "full_refresh" BOOLEAN NOT NULL DEFAULT false;

