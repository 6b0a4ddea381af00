package dev.attn4j.internal.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.Dimension;
import java.awt.Point;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HeatmapTest {

    private static final int TOP = 0xFDE725; // colormap at the scale's maximum
    private static final int BOTTOM = 0x440154; // colormap at 0

    @BeforeAll
    static void headless() {
        System.setProperty("java.awt.headless", "true");
    }

    /** Causal softmax-like rows: row q spreads its weight over keys 0..q, most on the diagonal. */
    static float[] causal(int heads, int queries, int keys) {
        float[] s = new float[heads * queries * keys];
        for (int h = 0; h < heads; h++) {
            for (int q = 0; q < queries; q++) {
                int last = Math.min(q, keys - 1);
                double sum = 0;
                double[] e = new double[last + 1];
                for (int k = 0; k <= last; k++) {
                    e[k] = Math.exp(-(h + 1) * 0.7 * (last - k));
                    sum += e[k];
                }
                for (int k = 0; k <= last; k++) {
                    s[(h * queries + q) * keys + k] = (float) (e[k] / sum);
                }
            }
        }
        return s;
    }

    private static int rgbAt(BufferedImage img, Point p) {
        return img.getRGB(p.x, p.y) & 0xFFFFFF;
    }

    @Test
    void colormapEndsAreViridisLike() {
        assertEquals(BOTTOM, Heatmap.rgb(0.0));
        assertEquals(TOP, Heatmap.rgb(1.0));
        assertEquals(BOTTOM, Heatmap.rgb(-3.0));
        assertEquals(TOP, Heatmap.rgb(7.0));
        // Luminance increases monotonically along the scale (a sequential map).
        double previous = -1;
        for (int i = 0; i <= 100; i++) {
            int c = Heatmap.rgb(i / 100.0);
            double lum = 0.2126 * (c >> 16 & 0xFF) + 0.7152 * (c >> 8 & 0xFF) + 0.0722 * (c & 0xFF);
            assertTrue(lum >= previous - 1e-9, "luminance falls at t=" + i / 100.0);
            previous = lum;
        }
    }

    @Test
    void sizesMatchAndMaxAndZeroCellsHaveScaleEndColours() {
        int[][] shapes = {
            {1, 3, 3}, {1, 40, 40}, {2, 4, 6}, {2, 40, 40}, {5, 7, 7}, {5, 40, 40}, {5, 1, 40}, {2, 40, 3},
        };
        for (int[] shape : shapes) {
            int heads = shape[0];
            int queries = shape[1];
            int keys = shape[2];
            float[] s = causal(heads, queries, keys);
            // A known maximum and a known zero in the last head.
            int h = heads - 1;
            int q = queries - 1;
            s[(h * queries + q) * keys] = 1f;
            if (keys > 1) {
                s[(h * queries + q) * keys + keys - 1] = 0f;
            }
            BufferedImage img = Heatmap.render("t", s, heads, queries, keys, null, null);
            Dimension d = Heatmap.size(heads, queries, keys);
            String what = heads + "x" + queries + "x" + keys;
            assertEquals(d.width, img.getWidth(), what);
            assertEquals(d.height, img.getHeight(), what);
            assertTrue(img.getWidth() <= 2400, what + " width " + img.getWidth());
            assertEquals(TOP, rgbAt(img, Heatmap.cellCenter(heads, queries, keys, h, q, 0)), what);
            if (keys > 1) {
                assertEquals(BOTTOM, rgbAt(img, Heatmap.cellCenter(heads, queries, keys, h, q, keys - 1)), what);
            }
        }
    }

    @Test
    void scaleRangeFollowsTheLargestValue() {
        // With a maximum of 0.5, a 0.5 cell is the top colour and a 0.25 cell the middle one.
        float[] s = {0.5f, 0.25f, 0f, 0.1f};
        BufferedImage img = Heatmap.render("half", s, 1, 2, 2, null, null);
        assertEquals(TOP, rgbAt(img, Heatmap.cellCenter(1, 2, 2, 0, 0, 0)));
        assertEquals(Heatmap.rgb(0.5), rgbAt(img, Heatmap.cellCenter(1, 2, 2, 0, 0, 1)));
        assertEquals(BOTTOM, rgbAt(img, Heatmap.cellCenter(1, 2, 2, 0, 1, 0)));
        // All zeros: the range is [0, 1e-6], everything at the bottom colour.
        BufferedImage zeros = Heatmap.render("zeros", new float[4], 1, 2, 2, null, null);
        assertEquals(BOTTOM, rgbAt(zeros, Heatmap.cellCenter(1, 2, 2, 0, 1, 1)));
    }

    @Test
    void rowsAreQueriesAndColumnsAreKeys() {
        // One head, 3 queries x 5 keys: only (query 2, key 4) is hot.
        float[] s = new float[15];
        s[2 * 5 + 4] = 1f;
        BufferedImage img = Heatmap.render("orientation", s, 1, 3, 5, null, null);
        Point hot = Heatmap.cellCenter(1, 3, 5, 0, 2, 4);
        Point first = Heatmap.cellCenter(1, 3, 5, 0, 0, 0);
        assertTrue(hot.y > first.y, "query 2 is below query 0");
        assertTrue(hot.x > first.x, "key 4 is right of key 0");
        assertEquals(TOP, rgbAt(img, hot));
        assertEquals(BOTTOM, rgbAt(img, first));
        assertEquals(BOTTOM, rgbAt(img, Heatmap.cellCenter(1, 3, 5, 0, 2, 2)));
    }

    @Test
    void panelsAreLaidOutAtMostFourPerRow() {
        Point h0 = Heatmap.cellCenter(5, 4, 4, 0, 0, 0);
        Point h3 = Heatmap.cellCenter(5, 4, 4, 3, 0, 0);
        Point h4 = Heatmap.cellCenter(5, 4, 4, 4, 0, 0);
        assertEquals(h0.y, h3.y);
        assertTrue(h3.x > h0.x);
        assertEquals(h0.x, h4.x);
        assertTrue(h4.y > h0.y);
        Dimension one = Heatmap.size(1, 4, 4);
        Dimension five = Heatmap.size(5, 4, 4);
        assertTrue(five.width > one.width && five.height > one.height);
    }

    @Test
    void longSequencesStayWithinTheWidthLimit() {
        for (int n : new int[] {100, 512, 2000}) {
            Dimension d = Heatmap.size(8, n, n);
            assertTrue(d.width <= 2400, n + ": " + d);
        }
        float[] s = causal(4, 300, 300);
        BufferedImage img = Heatmap.render("long", s, 4, 300, 300, null, null);
        assertEquals(Heatmap.size(4, 300, 300), new Dimension(img.getWidth(), img.getHeight()));
        assertEquals(TOP, rgbAt(img, Heatmap.cellCenter(4, 300, 300, 0, 0, 0))); // row 0 puts all weight on key 0
    }

    @Test
    void nanCellsAreGrey() {
        float[] s = causal(2, 4, 4);
        s[(1 * 4 + 2) * 4 + 1] = Float.NaN;
        BufferedImage img = Heatmap.render("nan", s, 2, 4, 4, null, null);
        assertEquals(Heatmap.NAN_RGB, rgbAt(img, Heatmap.cellCenter(2, 4, 4, 1, 2, 1)));
        assertNotEquals(Heatmap.NAN_RGB, rgbAt(img, Heatmap.cellCenter(2, 4, 4, 1, 2, 0)));
        // The legend swatch appears only when there is a NaN.
        BufferedImage clean = Heatmap.render("nan", causal(2, 4, 4), 2, 4, 4, null, null);
        assertTrue(count(img, Heatmap.NAN_RGB) > count(clean, Heatmap.NAN_RGB) + 1,
                "NaN legend swatch drawn only with NaN present");
        // NaN does not disturb the scale: the largest finite value is still the top colour.
        assertEquals(TOP, rgbAt(img, Heatmap.cellCenter(2, 4, 4, 0, 0, 0)));
    }

    private static int count(BufferedImage img, int rgb) {
        int n = 0;
        for (int y = 0; y < img.getHeight(); y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                if ((img.getRGB(x, y) & 0xFFFFFF) == rgb) {
                    n++;
                }
            }
        }
        return n;
    }

    @Test
    void labelsAreAcceptedIncludingLongOnes() {
        List<String> q = List.of("The", "quick", "brown", "fox");
        List<String> k = List.of("<bos>", "The", "quick", "a-very-very-long-token-that-must-be-shortened");
        BufferedImage img = Heatmap.render("labels", causal(1, 4, 4), 1, 4, 4, q, k);
        assertEquals(Heatmap.size(1, 4, 4), new Dimension(img.getWidth(), img.getHeight()));
        // Text is drawn anti-aliased: more than two distinct colours outside the cells.
        Set<Integer> colours = new HashSet<>();
        for (int y = 0; y < img.getHeight(); y++) {
            colours.add(img.getRGB(5, y) & 0xFFFFFF);
            for (int x = 0; x < 60; x++) {
                colours.add(img.getRGB(x, y) & 0xFFFFFF);
            }
        }
        assertTrue(colours.size() > 3, "anti-aliased text");
        assertEquals(0xFFFFFF, img.getRGB(0, 0) & 0xFFFFFF, "white background");
    }

    @Test
    void writePngRoundTrips(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("attn.png");
        List<String> tokens = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            tokens.add("tok" + i);
        }
        Heatmap.writePng(file, "round trip", causal(2, 6, 6), 2, 6, 6, tokens, tokens);
        assertTrue(Files.size(file) > 0);
        BufferedImage back = ImageIO.read(file.toFile());
        assertNotNull(back, "readable PNG");
        assertEquals(Heatmap.size(2, 6, 6), new Dimension(back.getWidth(), back.getHeight()));
        assertEquals(TOP, rgbAt(back, Heatmap.cellCenter(2, 6, 6, 1, 0, 0)));
        // Overwrites an existing file.
        Heatmap.writePng(file, "again", causal(1, 2, 2), 1, 2, 2, null, null);
        assertEquals(Heatmap.size(1, 2, 2).width, ImageIO.read(file.toFile()).getWidth());
    }

    @Test
    void argumentErrorsNameTheArgument() {
        float[] s = new float[2 * 3 * 4];
        expect("scores", () -> Heatmap.render("t", null, 2, 3, 4, null, null));
        expect("heads", () -> Heatmap.render("t", s, 0, 3, 4, null, null));
        expect("queries", () -> Heatmap.render("t", s, 2, -1, 4, null, null));
        expect("keys", () -> Heatmap.render("t", s, 2, 3, 0, null, null));
        String msg = expect("scores.length", () -> Heatmap.render("t", new float[23], 2, 3, 4, null, null));
        assertTrue(msg.contains("24") && msg.contains("23"), msg);
        msg = expect("queryLabels", () -> Heatmap.render("t", s, 2, 3, 4, List.of("a", "b"), null));
        assertTrue(msg.contains("3") && msg.contains("2"), msg);
        msg = expect("keyLabels", () -> Heatmap.render("t", s, 2, 3, 4, null, List.of("a")));
        assertTrue(msg.contains("4") && msg.contains("1"), msg);
        List<String> withNull = new ArrayList<>(List.of("a", "b", "c"));
        withNull.set(1, null);
        expect("queryLabels[1]", () -> Heatmap.render("t", s, 2, 3, 4, withNull, null));
        expect("file", () -> Heatmap.writePng(null, "t", s, 2, 3, 4, null, null));
        expect("heads", () -> Heatmap.size(0, 1, 1));
        expect("key", () -> Heatmap.cellCenter(1, 2, 2, 0, 0, 2));
        // A null title is allowed.
        assertFalse(Heatmap.render(null, s, 2, 3, 4, null, null).getWidth() <= 0);
    }

    @FunctionalInterface
    private interface Call {
        void run() throws Exception;
    }

    private static String expect(String argument, Call call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(argument + " ") || e.getMessage().startsWith(argument + "."),
                "message names " + argument + ": " + e.getMessage());
        return e.getMessage();
    }
}
