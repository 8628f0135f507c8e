# bench/plot.gp - the chart of bench/RESULTS.md: bar charts of the ratios.
#   gnuplot -e "datadir='bench/out/plot'; outfile='bench/results.png'" bench/plot.gp
# Data files (written by bench/report.lua): seq.dat, bulk.dat, targets.dat
# ("label" value color) and allowlist.dat ("entries" and four ratios).
# gnuplot-nox has the cairo terminals; pngcairo draws anti-aliased text.

set terminal pngcairo size 1400,1000 font "DejaVu Sans,10" noenhanced
set output outfile
set multiplot layout 2,2 title "cometkey benchmark (bench/RESULTS.md): ratios measured in one run"

set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set xtics nomirror
set ytics nomirror
set offsets 0.6, 0.6, 0, 0
set yrange [0:*]

# 1. sequential updates against the C libcurl loop
set title "Sequential updates: req/s relative to the C libcurl loop"
set ylabel "x C loop"
set key top right
plot datadir."/seq.dat" using 0:2:3:xtic(1) with boxes linecolor rgb variable notitle, \
     0.9 with lines dashtype 2 linecolor rgb "#cc3311" title "target for cometkey (0.9)", \
     1.0 with lines linecolor rgb "#555555" title "C loop = 1"

# 2. bulk
set title "Bulk at concurrency 16"
set ylabel "ratio of req/s"
plot datadir."/bulk.dat" using 0:2:3:xtic(1) with boxes linecolor rgb variable notitle, \
     0.8 with lines dashtype 2 linecolor rgb "#cc3311" title "target: update_many vs C multi loop (0.8)"

# 3. allowlist speed-up (log scale, clustered)
set title "Allowlist contains, IPv4 text: comparator time / cometkey time (Lua 5.4)"
set ylabel "times faster (log scale)"
set offsets 0, 0, 0, 0
set logscale y
set yrange [1:*]
set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9
set key top left
plot datadir."/allowlist.dat" using 2:xtic(1) title "hash-per-prefix Lua 5.4" linecolor rgb "#66ccee", \
     "" using 3 title "hash-per-prefix LuaJIT" linecolor rgb "#4477aa", \
     "" using 4 title "linear scan Lua 5.4" linecolor rgb "#ee6677", \
     "" using 5 title "linear scan LuaJIT" linecolor rgb "#aa3377", \
     3 with lines dashtype 2 linecolor rgb "#4477aa" title "target 3x (hash-per-prefix)", \
     100 with lines dashtype 2 linecolor rgb "#aa3377" title "target 100x (linear)"
unset logscale y

# 4. targets
set title "Targets T1.. of RESULTS.md: score >= 1 passes (green), axis capped at 3"
set ylabel "measured / target (or target / measured)"
set offsets 0.6, 0.6, 0, 0
set boxwidth 0.6
set yrange [0:3]
set key top right
plot datadir."/targets.dat" using 0:2:3:xtic(1) with boxes linecolor rgb variable notitle, \
     1.0 with lines linecolor rgb "#555555" title "pass line"

unset multiplot
