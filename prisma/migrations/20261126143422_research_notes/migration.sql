-- CreateTable
CREATE TABLE "research_notes" (
    "id" SERIAL NOT NULL,
    "title" TEXT NOT NULL,
    "body" TEXT NOT NULL,
    "symbol" TEXT,
    "day" DATE,
    "regime" INTEGER,
    "tags" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "embedding" vector(256),
    "embedding_model" TEXT,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "research_notes_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "research_notes_symbol_day_idx" ON "research_notes"("symbol", "day");

