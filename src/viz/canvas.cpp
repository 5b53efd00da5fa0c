#include "viz/canvas.h"

#include <cairo-pdf.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "sparsa/atomic_file.h"
#include "sparsa/error.h"

namespace sparsa::viz {

namespace {

constexpr int kMinSide = 200, kMaxSide = 8000;
constexpr const char* kFontFace = "DejaVu Sans";
constexpr double kMinUnit = 0.7;  // text stays readable on small figures

cairo_status_t append_to_string(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

// Renders the recording onto `target` (already sized), scaled by `scale`; a vector target is
// finished (its stream written). Takes over `target` unless it returns it (keep = true).
cairo_surface_t* replay(const Image::Surface& rec, cairo_surface_t* target, double scale, std::string_view format,
                        bool keep = false) {
  cairo_t* cr = cairo_create(target);
  cairo_scale(cr, scale, scale);
  cairo_set_source_surface(cr, rec.surface, 0, 0);
  cairo_paint(cr);
  const cairo_status_t drawn = cairo_status(cr);
  cairo_destroy(cr);
  if (keep) cairo_surface_flush(target);
  else cairo_surface_finish(target);
  const cairo_status_t st = drawn != CAIRO_STATUS_SUCCESS ? drawn : cairo_surface_status(target);
  if (!keep || st != CAIRO_STATUS_SUCCESS) cairo_surface_destroy(target);
  if (st != CAIRO_STATUS_SUCCESS) runtime_failure("{} encoding failed: {}", format, cairo_status_to_string(st));
  return keep ? target : nullptr;
}

}  // namespace

std::string_view figure_format_name(FigureFormat f) {
  switch (f) {
    case FigureFormat::kPng: return "png";
    case FigureFormat::kPdf: return "pdf";
  }
  return "png";
}

FigureFormat parse_figure_format(std::string_view name) {
  for (const FigureFormat f : {FigureFormat::kPng, FigureFormat::kPdf})
    if (name == figure_format_name(f)) return f;
  bad_input("figure format '{}' is not one of png, pdf", name);
}

Image::Image(std::shared_ptr<Surface> s) : surface_(std::move(s)) {}

int Image::width() const { return surface_->width; }
int Image::height() const { return surface_->height; }

std::string Image::png() const { return encode(FigureFormat::kPng); }

std::string Image::encode(FigureFormat f) const {
  std::string bytes;
  const int w = surface_->width, h = surface_->height;
  if (f == FigureFormat::kPdf) {
    constexpr double kPointsPerPixel = 72.0 / 96.0;
    cairo_surface_t* pdf = cairo_pdf_surface_create_for_stream(append_to_string, &bytes, w * kPointsPerPixel,
                                                               h * kPointsPerPixel);
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_CREATOR, "sparsa");
    replay(*surface_, pdf, kPointsPerPixel, "PDF");
  } else {
    cairo_surface_t* img = replay(*surface_, cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h), 1.0, "PNG", true);
    const cairo_status_t st = cairo_surface_write_to_png_stream(img, append_to_string, &bytes);
    cairo_surface_destroy(img);
    if (st != CAIRO_STATUS_SUCCESS) runtime_failure("PNG encoding failed: {}", cairo_status_to_string(st));
  }
  return bytes;
}

void Image::save(const std::filesystem::path& path) const {
  const std::string ext = path.extension().string();
  const FigureFormat f = ext == ".pdf" ? FigureFormat::kPdf : FigureFormat::kPng;
  write_file_atomic(path, encode(f));
}

Canvas::Canvas(const Frame& frame) : width_(frame.width), height_(frame.height) {
  if (width_ < kMinSide || width_ > kMaxSide || height_ < kMinSide || height_ > kMaxSide)
    bad_input("figure size {}x{} px: width and height must be in [{}, {}]", width_, height_, kMinSide, kMaxSide);
  unit_ = std::max(kMinUnit, std::sqrt(static_cast<double>(width_) * height_ / (1000.0 * 800.0)));
  const cairo_rectangle_t extents{0, 0, static_cast<double>(width_), static_cast<double>(height_)};
  surface_ = cairo_recording_surface_create(CAIRO_CONTENT_COLOR, &extents);
  cr_ = cairo_create(surface_);
  if (cairo_status(cr_) != CAIRO_STATUS_SUCCESS)
    runtime_failure("figure {}x{} px: cannot create the drawing surface: {}", width_, height_,
                    cairo_status_to_string(cairo_status(cr_)));
  cairo_set_source_rgb(cr_, 1, 1, 1);
  cairo_paint(cr_);
}

Canvas::~Canvas() {
  if (cr_) cairo_destroy(cr_);
  if (surface_) cairo_surface_destroy(surface_);
}

void Canvas::set_color(Rgb c, double alpha) const { cairo_set_source_rgba(cr_, c.r, c.g, c.b, alpha); }

void Canvas::line(double x0, double y0, double x1, double y1, double width, Rgb c, bool dashed) const {
  cairo_save(cr_);
  set_color(c);
  cairo_set_line_width(cr_, width * unit_);
  if (dashed) {
    const double d[] = {6 * unit_, 4 * unit_};
    cairo_set_dash(cr_, d, 2, 0);
  }
  cairo_move_to(cr_, x0, y0);
  cairo_line_to(cr_, x1, y1);
  cairo_stroke(cr_);
  cairo_restore(cr_);
}

void Canvas::fill_rect(const Rect& r, Rgb c, double alpha) const {
  set_color(c, alpha);
  cairo_rectangle(cr_, r.x, r.y, r.w, r.h);
  cairo_fill(cr_);
}

void Canvas::stroke_rect(const Rect& r, double width, Rgb c) const {
  set_color(c);
  cairo_set_line_width(cr_, width * unit_);
  cairo_rectangle(cr_, r.x, r.y, r.w, r.h);
  cairo_stroke(cr_);
}

void Canvas::select_font(double size, bool bold) const {
  cairo_select_font_face(cr_, kFontFace, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr_, size * unit_);
}

double Canvas::text_width(std::string_view s, double size, bool bold) const {
  select_font(size, bold);
  const std::string str(s);
  cairo_text_extents_t e;
  cairo_text_extents(cr_, str.c_str(), &e);
  return e.x_advance;
}

double Canvas::text_height(double size) const {
  select_font(size, false);
  cairo_font_extents_t fe;
  cairo_font_extents(cr_, &fe);
  return fe.ascent + fe.descent;
}

void Canvas::text(std::string_view s, double x, double y, double size, HAlign h, VAlign v, Rgb c, double angle,
                  bool bold) const {
  if (s.empty()) return;
  const std::string str(s);
  select_font(size, bold);
  cairo_font_extents_t fe;
  cairo_font_extents(cr_, &fe);
  cairo_text_extents_t te;
  cairo_text_extents(cr_, str.c_str(), &te);
  double dx = 0, dy = 0;
  if (h == HAlign::kCenter) dx = -te.x_advance / 2;
  if (h == HAlign::kRight) dx = -te.x_advance;
  if (v == VAlign::kTop) dy = fe.ascent;
  if (v == VAlign::kMiddle) dy = (fe.ascent - fe.descent) / 2;
  if (v == VAlign::kBottom) dy = -fe.descent;
  cairo_save(cr_);
  cairo_translate(cr_, x, y);
  cairo_rotate(cr_, -angle);
  set_color(c);
  cairo_move_to(cr_, dx, dy);
  cairo_show_text(cr_, str.c_str());
  cairo_restore(cr_);
}

double Canvas::title(const std::string& s, const std::string& subtitle, bool draw) const {
  const double pad = 12 * unit_, max_w = width_ - 2 * pad;
  double y = pad;
  const auto centred_line = [&](const std::string& line, double size, Rgb colour, bool bold) {
    if (line.empty()) return;
    const double w = text_width(line, size, bold);
    if (w > max_w) size *= max_w / w;
    if (draw) text(line, width_ / 2.0, y, size, HAlign::kCenter, VAlign::kTop, colour, 0, bold);
    y += text_height(size) + 4 * unit_;
  };
  centred_line(s, kTitleFont, kBlack, true);
  centred_line(subtitle, kSubtitleFont, kAxisGrey, false);
  return y + pad;
}

Image Canvas::finish() {
  cairo_surface_flush(surface_);
  if (cairo_status(cr_) != CAIRO_STATUS_SUCCESS)
    runtime_failure("drawing the figure failed: {}", cairo_status_to_string(cairo_status(cr_)));
  cairo_destroy(cr_);
  cr_ = nullptr;
  auto s = std::make_shared<Image::Surface>(surface_, width_, height_);
  surface_ = nullptr;
  return Image(std::move(s));
}

}  // namespace sparsa::viz
