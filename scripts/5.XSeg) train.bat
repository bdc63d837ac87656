@echo off
rem 5.XSeg) train: train the XSeg mask network on the labelled faces of data_src/aligned and
rem data_dst/aligned into workspace/model (with no labels at all it learns from the landmarks and
rem synthetic occluders). A preview window shows progress; Enter (or Ctrl+C without a window) saves
rem and stops. Then apply it with 5.XSeg.optional) trained mask ... - apply.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" train ^
    --training-data-src-dir "%WORKSPACE%\data_src\aligned" ^
    --training-data-dst-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model XSeg ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
