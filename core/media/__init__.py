"""Images: the safe download (`fetch`), the content-addressed store with right-sized copies
(`store`), the backfill of copies for images stored before they existed (`backfill`), and the
small previews of running jobs (`previews`)."""
