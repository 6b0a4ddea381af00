package dev.attn4j.internal.cli;

import java.awt.Color;
import java.awt.Dimension;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.Point;
import java.awt.RenderingHints;
import java.awt.geom.AffineTransform;
import java.awt.image.BufferedImage;
import java.awt.image.DataBufferInt;
import java.io.IOException;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;

/**
 * Renders attention weights as heatmaps: one panel per head (at most four per row),
 * query positions top to bottom, key positions left to right, with a shared colour
 * scale (a viridis-like sequential colormap) on the right.
 *
 * <p>Uses only {@code java.awt} image and font classes and {@code javax.imageio}, so
 * it works headless ({@code -Djava.awt.headless=true}). The image size depends only on
 * the number of heads, queries and keys (see {@link #size}); labels that do not fit
 * their reserved space are shortened with an ellipsis.
 */
public final class Heatmap {
    private Heatmap() {}

    // Layout, in pixels. The image size is a function of these and of (heads, queries, keys) only.
    private static final int MARGIN = 16;
    private static final int FIG_TITLE_H = 28;
    private static final int PANEL_TITLE_H = 22;
    private static final int AXIS_TITLE_W = 18;
    private static final int QLABEL_W = 60;
    private static final int TICK = 4;
    private static final int KLABEL_H = 60;
    private static final int AXIS_TITLE_H = 20;
    private static final int COL_GAP = 20;
    private static final int ROW_GAP = 14;
    private static final int BAR_GAP = 28;
    private static final int BAR_W = 18;
    private static final int BAR_LABEL_W = 64;
    private static final int BAR_MIN_H = 160;
    private static final int BAR_MAX_H = 480;
    private static final int NAN_LEGEND_H = 30;
    private static final int MIN_WIDTH = 320;
    private static final int MAX_WIDTH = 2400;
    private static final int MAX_PANELS_PER_ROW = 4;
    private static final int MIN_TICK_SPACING = 14;
    private static final long MAX_PIXELS = 100_000_000L;

    /** Colour of NaN cells (and of their legend swatch): a neutral grey not on the colormap. */
    static final int NAN_RGB = 0x9E9E9E;

    /** Anchors of the colormap, evenly spaced from value 0 (first) to the scale's maximum (last). */
    private static final int[] ANCHORS = {
        0x440154, 0x482475, 0x414487, 0x355F8D, 0x2A788E, 0x21918C,
        0x22A884, 0x44BF70, 0x7AD151, 0xBDDF26, 0xFDE725,
    };

    private static final Color TEXT = new Color(0x222222);
    private static final Color FRAME = new Color(0x555555);
    private static final Font FIG_TITLE_FONT = new Font(Font.SANS_SERIF, Font.BOLD, 14);
    private static final Font PANEL_TITLE_FONT = new Font(Font.SANS_SERIF, Font.BOLD, 13);
    private static final Font AXIS_FONT = new Font(Font.SANS_SERIF, Font.PLAIN, 13);
    private static final Font TICK_FONT = new Font(Font.SANS_SERIF, Font.PLAIN, 12);

    /**
     * Renders the heatmaps of one batch element.
     *
     * @param title figure title (null for none)
     * @param scores attention weights laid out (heads, queries, keys), row-major; values
     *     normally in [0, 1]. NaN cells are grey; values are clamped to the scale
     *     [0, max(1e-6, largest finite value)]
     * @param queryLabels one label per query position, or null for indices
     * @param keyLabels one label per key position, or null for indices
     * @throws IllegalArgumentException on null scores, non-positive sizes, a length that
     *     is not heads*queries*keys, label lists of the wrong size or with null elements,
     *     or an image of more than 100 million pixels
     */
    public static BufferedImage render(String title, float[] scores, int heads, int queries, int keys,
            List<String> queryLabels, List<String> keyLabels) {
        validate(scores, heads, queries, keys, queryLabels, keyLabels);
        Layout l = Layout.of(heads, queries, keys);
        if ((long) l.width * l.height > MAX_PIXELS) {
            throw new IllegalArgumentException("image would be " + l.width + "x" + l.height + " pixels for heads="
                    + heads + ", queries=" + queries + ", keys=" + keys + "; expected at most " + MAX_PIXELS
                    + " pixels");
        }
        List<String> qLabels = labels(queryLabels, queries);
        List<String> kLabels = labels(keyLabels, keys);

        float max = 0f;
        boolean hasNaN = false;
        for (float v : scores) {
            if (Float.isNaN(v)) {
                hasNaN = true;
            } else if (Float.isFinite(v) && v > max) {
                max = v;
            }
        }
        double vmax = Math.max(1e-6, max);

        BufferedImage img = new BufferedImage(l.width, l.height, BufferedImage.TYPE_INT_RGB);
        int[] px = ((DataBufferInt) img.getRaster().getDataBuffer()).getData();
        Arrays.fill(px, 0xFFFFFF);
        for (int h = 0; h < heads; h++) {
            Point o = l.matrixOrigin(h);
            for (int q = 0; q < queries; q++) {
                int base = (h * queries + q) * keys;
                for (int k = 0; k < keys; k++) {
                    float v = scores[base + k];
                    int rgb = Float.isNaN(v) ? NAN_RGB : rgb(v / vmax);
                    fill(px, l.width, o.x + k * l.cell, o.y + q * l.cell, l.cell, l.cell, rgb);
                }
            }
        }
        for (int y = 0; y < l.barH; y++) {
            fill(px, l.width, l.barX, l.barY + y, BAR_W, 1, rgb(1.0 - (y + 0.5) / l.barH));
        }

        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_FRACTIONALMETRICS, RenderingHints.VALUE_FRACTIONALMETRICS_ON);
            g.setRenderingHint(RenderingHints.KEY_RENDERING, RenderingHints.VALUE_RENDER_QUALITY);
            drawFigureTitle(g, l, title == null ? "" : title);
            for (int h = 0; h < heads; h++) {
                drawPanelDecorations(g, l, h, qLabels, kLabels);
            }
            drawScale(g, l, vmax, hasNaN);
        } finally {
            g.dispose();
        }
        return img;
    }

    /**
     * Renders as {@link #render} and writes the image as a PNG file (replacing an
     * existing file; the parent folder must exist).
     */
    public static void writePng(Path file, String title, float[] scores, int heads, int queries, int keys,
            List<String> queryLabels, List<String> keyLabels) throws IOException {
        if (file == null) {
            throw new IllegalArgumentException("file must not be null");
        }
        BufferedImage img = render(title, scores, heads, queries, keys, queryLabels, keyLabels);
        try (OutputStream out = Files.newOutputStream(file)) {
            if (!ImageIO.write(img, "png", out)) {
                throw new IOException("no PNG writer available to write " + file);
            }
        }
    }

    /** The exact pixel size of the image {@link #render} produces for these sizes. */
    public static Dimension size(int heads, int queries, int keys) {
        validateSizes(heads, queries, keys);
        Layout l = Layout.of(heads, queries, keys);
        return new Dimension(l.width, l.height);
    }

    /** The pixel at the centre of the cell (head, query, key) in the rendered image. */
    static Point cellCenter(int heads, int queries, int keys, int head, int query, int key) {
        validateSizes(heads, queries, keys);
        checkIndex("head", head, heads);
        checkIndex("query", query, queries);
        checkIndex("key", key, keys);
        Layout l = Layout.of(heads, queries, keys);
        Point o = l.matrixOrigin(head);
        return new Point(o.x + key * l.cell + l.cell / 2, o.y + query * l.cell + l.cell / 2);
    }

    /** The colormap: RGB for a value t in [0, 1] (clamped; NaN maps to 0). */
    static int rgb(double t) {
        if (!(t > 0)) {
            return ANCHORS[0];
        }
        if (t >= 1) {
            return ANCHORS[ANCHORS.length - 1];
        }
        double x = t * (ANCHORS.length - 1);
        int i = Math.min((int) x, ANCHORS.length - 2);
        double f = x - i;
        int a = ANCHORS[i];
        int b = ANCHORS[i + 1];
        return (mix(a >> 16, b >> 16, f) << 16) | (mix(a >> 8, b >> 8, f) << 8) | mix(a, b, f);
    }

    private static int mix(int a, int b, double f) {
        a &= 0xFF;
        b &= 0xFF;
        return (int) Math.round(a + (b - a) * f);
    }

    // ---------------------------------------------------------------- layout

    /** Geometry of one figure; all fields derive from (heads, queries, keys). */
    private record Layout(int heads, int queries, int keys, int cell, int cols, int rows, int panelW, int panelH,
            int width, int height, int barX, int barY, int barH) {

        static Layout of(int heads, int queries, int keys) {
            int preferred = Math.max(4, Math.min(24, 480 / Math.max(queries, keys)));
            int floor = Math.max(4, preferred * 3 / 4);
            int cols = Math.min(MAX_PANELS_PER_ROW, heads);
            int cell = preferred;
            // Stay within MAX_WIDTH: first shrink cells a little, then use fewer panels per row,
            // and only with one panel per row left shrink cells further (down to 1 px).
            while (width(cols, keys, cell) > MAX_WIDTH) {
                if (cell > floor) {
                    cell--;
                } else if (cols > 1) {
                    cols--;
                    cell = preferred;
                } else if (cell > 1) {
                    cell--;
                } else {
                    break;
                }
            }
            int rows = (heads + cols - 1) / cols;
            int panelW = AXIS_TITLE_W + QLABEL_W + TICK + (int) Math.min(Integer.MAX_VALUE / 4, (long) keys * cell);
            int panelH = PANEL_TITLE_H + (int) Math.min(Integer.MAX_VALUE / 4, (long) queries * cell)
                    + TICK + KLABEL_H + AXIS_TITLE_H;
            int gridW = cols * panelW + (cols - 1) * COL_GAP;
            int width = Math.max(MIN_WIDTH, MARGIN + gridW + BAR_GAP + BAR_W + TICK + BAR_LABEL_W + MARGIN);
            int barX = MARGIN + gridW + BAR_GAP;
            int barY = MARGIN + FIG_TITLE_H + PANEL_TITLE_H;
            int barH = (int) Math.max(BAR_MIN_H, Math.min(BAR_MAX_H, (long) queries * cell));
            long gridBottom = MARGIN + FIG_TITLE_H + (long) rows * panelH + (long) (rows - 1) * ROW_GAP + MARGIN;
            long barBottom = barY + barH + NAN_LEGEND_H + MARGIN;
            int height = (int) Math.min(Integer.MAX_VALUE, Math.max(gridBottom, barBottom));
            return new Layout(heads, queries, keys, cell, cols, rows, panelW, panelH, width, height, barX, barY,
                    barH);
        }

        private static long width(int cols, int keys, int cell) {
            long panelW = AXIS_TITLE_W + QLABEL_W + TICK + (long) keys * cell;
            return MARGIN + cols * panelW + (long) (cols - 1) * COL_GAP + BAR_GAP + BAR_W + TICK + BAR_LABEL_W
                    + MARGIN;
        }

        /** Top-left corner of the panel of head h (its title row included). */
        Point panelOrigin(int h) {
            int r = h / cols;
            int c = h % cols;
            return new Point(MARGIN + c * (panelW + COL_GAP), MARGIN + FIG_TITLE_H + r * (panelH + ROW_GAP));
        }

        /** Top-left pixel of cell (0, 0) of head h. */
        Point matrixOrigin(int h) {
            Point p = panelOrigin(h);
            return new Point(p.x + AXIS_TITLE_W + QLABEL_W + TICK, p.y + PANEL_TITLE_H);
        }
    }

    // ---------------------------------------------------------------- drawing

    private static void fill(int[] px, int stride, int x, int y, int w, int h, int rgb) {
        for (int yy = y; yy < y + h; yy++) {
            int row = yy * stride;
            Arrays.fill(px, row + x, row + x + w, rgb);
        }
    }

    private static void drawFigureTitle(Graphics2D g, Layout l, String title) {
        g.setFont(FIG_TITLE_FONT);
        g.setColor(TEXT);
        FontMetrics fm = g.getFontMetrics();
        String s = fit(title, fm, l.width - 2 * MARGIN);
        int x = Math.max(MARGIN, (l.width - fm.stringWidth(s)) / 2);
        g.drawString(s, x, MARGIN + fm.getAscent());
    }

    private static void drawPanelDecorations(Graphics2D g, Layout l, int h, List<String> qLabels,
            List<String> kLabels) {
        Point p = l.panelOrigin(h);
        Point o = l.matrixOrigin(h);
        int mw = l.keys * l.cell;
        int mh = l.queries * l.cell;
        int panelRight = p.x + l.panelW;

        g.setColor(FRAME);
        g.drawRect(o.x - 1, o.y - 1, mw + 1, mh + 1);

        // Panel title, centred over the matrix but kept inside the panel.
        g.setFont(PANEL_TITLE_FONT);
        g.setColor(TEXT);
        FontMetrics fm = g.getFontMetrics();
        String title = "head " + h;
        int tw = fm.stringWidth(title);
        g.drawString(title, clamp(o.x + (mw - tw) / 2, p.x, panelRight - tw), p.y + PANEL_TITLE_H - 7);

        // Query ticks and labels: horizontal text, right-aligned, left of the matrix.
        g.setFont(TICK_FONT);
        fm = g.getFontMetrics();
        int qStep = tickStep(l.queries, l.cell);
        int mid = (fm.getAscent() - fm.getDescent()) / 2;
        for (int i = 0; i < l.queries; i += qStep) {
            int y = o.y + i * l.cell + l.cell / 2;
            g.setColor(FRAME);
            g.drawLine(o.x - TICK - 1, y, o.x - 2, y);
            g.setColor(TEXT);
            String s = fit(qLabels.get(i), fm, QLABEL_W - 4);
            g.drawString(s, o.x - TICK - 3 - fm.stringWidth(s), y + mid);
        }

        // Key ticks and labels: horizontal when every shown label fits its slot, else rotated.
        int kStep = tickStep(l.keys, l.cell);
        List<String> shown = new ArrayList<>();
        boolean horizontal = true;
        for (int j = 0; j < l.keys; j += kStep) {
            String s = fit(kLabels.get(j), fm, KLABEL_H - 8);
            shown.add(s);
            horizontal &= fm.stringWidth(s) + 4 <= kStep * l.cell;
        }
        int labelTop = o.y + mh + TICK + 3;
        int labelsBottom = labelTop;
        for (int n = 0; n < shown.size(); n++) {
            int j = n * kStep;
            String s = shown.get(n);
            int x = o.x + j * l.cell + l.cell / 2;
            g.setColor(FRAME);
            g.drawLine(x, o.y + mh + 1, x, o.y + mh + TICK);
            g.setColor(TEXT);
            int w = fm.stringWidth(s);
            if (horizontal) {
                g.drawString(s, x - w / 2, labelTop + fm.getAscent());
                labelsBottom = Math.max(labelsBottom, labelTop + fm.getAscent() + fm.getDescent());
            } else {
                AffineTransform saved = g.getTransform();
                g.translate(x + mid, labelTop);
                g.rotate(-Math.PI / 2);
                g.drawString(s, -w, 0);
                g.setTransform(saved);
                labelsBottom = Math.max(labelsBottom, labelTop + w);
            }
        }

        // Axis titles, shortened when the panel is too small for the full text.
        g.setFont(AXIS_FONT);
        fm = g.getFontMetrics();
        String kt = firstFitting(fm, l.panelW, "key position", "key", "k");
        int ktw = fm.stringWidth(kt);
        int ktBaseline = Math.min(labelsBottom + 4 + fm.getAscent(), p.y + l.panelH - fm.getDescent() - 1);
        g.drawString(kt, clamp(o.x + (mw - ktw) / 2, p.x, panelRight - ktw), ktBaseline);

        String qt = firstFitting(fm, l.panelH, "query position", "query", "q");
        int qtw = fm.stringWidth(qt);
        // Rotated text: reads bottom to top; its start (bottom end) at yStart.
        int yStart = clamp(o.y + (mh + qtw) / 2, p.y + qtw, p.y + l.panelH);
        AffineTransform saved = g.getTransform();
        g.translate(p.x + fm.getAscent(), yStart);
        g.rotate(-Math.PI / 2);
        g.drawString(qt, 0, 0);
        g.setTransform(saved);
    }

    private static void drawScale(Graphics2D g, Layout l, double vmax, boolean hasNaN) {
        g.setColor(FRAME);
        g.drawRect(l.barX - 1, l.barY - 1, BAR_W + 1, l.barH + 1);
        g.setFont(AXIS_FONT);
        g.setColor(TEXT);
        FontMetrics fm = g.getFontMetrics();
        g.drawString("weight", l.barX, l.barY - 7);

        g.setFont(TICK_FONT);
        fm = g.getFontMetrics();
        int mid = (fm.getAscent() - fm.getDescent()) / 2;
        double step = niceStep(vmax / 4);
        int lastY = Integer.MAX_VALUE;
        int labelX = l.barX + BAR_W + TICK + 3;
        for (int i = 0; i * step <= vmax * (1 + 1e-9); i++) {
            double v = i * step;
            int y = barY(l, v / vmax);
            tick(g, l, y);
            g.setColor(TEXT);
            g.drawString(fit(format(v), fm, BAR_LABEL_W - 3), labelX, y + mid);
            lastY = y;
        }
        int top = barY(l, 1.0);
        if (lastY - top >= MIN_TICK_SPACING + 2) {
            tick(g, l, top);
            g.setColor(TEXT);
            g.drawString(fit(format(vmax), fm, BAR_LABEL_W - 3), labelX, top + mid);
        }

        if (hasNaN) {
            int y = l.barY + l.barH + 12;
            g.setColor(new Color(NAN_RGB));
            g.fillRect(l.barX, y, BAR_W, 12);
            g.setColor(FRAME);
            g.drawRect(l.barX - 1, y - 1, BAR_W + 1, 13);
            g.setColor(TEXT);
            g.drawString("NaN", labelX, y + 6 + mid);
        }
    }

    private static int barY(Layout l, double t) {
        return l.barY + l.barH - 1 - (int) Math.round(t * (l.barH - 1));
    }

    private static void tick(Graphics2D g, Layout l, int y) {
        g.setColor(FRAME);
        g.drawLine(l.barX + BAR_W + 1, y, l.barX + BAR_W + TICK, y);
    }

    // ---------------------------------------------------------------- helpers

    /** Smallest of 1, 2, 5, 10, 20, 50, ... positions between labels spaced at least MIN_TICK_SPACING px. */
    private static int tickStep(int n, int cell) {
        long step = 1;
        int[] mult = {2, 5, 10};
        long decade = 1;
        int m = 0;
        while (step * cell < MIN_TICK_SPACING && step < n) {
            step = decade * mult[m];
            if (++m == mult.length) {
                m = 0;
                decade *= 10;
            }
        }
        return (int) Math.min(step, Integer.MAX_VALUE);
    }

    /** A 1, 2, 2.5 or 5 times a power of ten at least raw. */
    private static double niceStep(double raw) {
        double mag = Math.pow(10, Math.floor(Math.log10(raw)));
        double norm = raw / mag;
        double nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
        return nice * mag;
    }

    /** At most three significant digits; plain notation for 0.001 <= |v| < 10000. */
    static String format(double v) {
        if (v == 0) {
            return "0";
        }
        double a = Math.abs(v);
        if (a >= 1e-3 && a < 1e4) {
            return new BigDecimal(v).round(new MathContext(3)).stripTrailingZeros().toPlainString();
        }
        return String.format(Locale.ROOT, "%.2e", v);
    }

    private static String fit(String s, FontMetrics fm, int maxWidth) {
        if (fm.stringWidth(s) <= maxWidth) {
            return s;
        }
        String ellipsis = "\u2026";
        int n = s.length();
        while (n > 0 && fm.stringWidth(s.substring(0, n) + ellipsis) > maxWidth) {
            n--;
        }
        return n == 0 ? (fm.stringWidth(ellipsis) <= maxWidth ? ellipsis : "") : s.substring(0, n) + ellipsis;
    }

    private static String firstFitting(FontMetrics fm, int maxWidth, String... options) {
        for (String s : options) {
            if (fm.stringWidth(s) <= maxWidth) {
                return s;
            }
        }
        return options[options.length - 1];
    }

    private static int clamp(int v, int lo, int hi) {
        return hi < lo ? lo : Math.max(lo, Math.min(hi, v));
    }

    private static List<String> labels(List<String> given, int n) {
        if (given != null) {
            return given;
        }
        List<String> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(Integer.toString(i));
        }
        return out;
    }

    // ---------------------------------------------------------------- validation

    private static void validate(float[] scores, int heads, int queries, int keys, List<String> queryLabels,
            List<String> keyLabels) {
        if (scores == null) {
            throw new IllegalArgumentException("scores must not be null");
        }
        validateSizes(heads, queries, keys);
        long expected = (long) heads * queries * keys;
        if (scores.length != expected) {
            throw new IllegalArgumentException("scores.length must be heads*queries*keys = " + heads + "*" + queries
                    + "*" + keys + " = " + expected + ", got " + scores.length);
        }
        validateLabels("queryLabels", queryLabels, "queries", queries);
        validateLabels("keyLabels", keyLabels, "keys", keys);
    }

    private static void validateSizes(int heads, int queries, int keys) {
        positive("heads", heads);
        positive("queries", queries);
        positive("keys", keys);
    }

    private static void positive(String name, int v) {
        if (v <= 0) {
            throw new IllegalArgumentException(name + " must be positive, got " + v);
        }
    }

    private static void checkIndex(String name, int i, int n) {
        if (i < 0 || i >= n) {
            throw new IllegalArgumentException(name + " must be in [0, " + n + "), got " + i);
        }
    }

    private static void validateLabels(String name, List<String> labels, String sizeName, int n) {
        if (labels == null) {
            return;
        }
        if (labels.size() != n) {
            throw new IllegalArgumentException(name + ".size() must equal " + sizeName + " = " + n + ", got "
                    + labels.size());
        }
        for (int i = 0; i < n; i++) {
            if (labels.get(i) == null) {
                throw new IllegalArgumentException(name + "[" + i + "] must not be null");
            }
        }
    }
}
